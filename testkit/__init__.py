"""What the tests use and the product never does: factories, worker processes, stand-ins."""
