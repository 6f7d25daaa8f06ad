"""One client per outside system; only these modules import the libraries that reach them."""
