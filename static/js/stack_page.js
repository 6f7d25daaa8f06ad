// The stack page's login forms: a refusal answers 429 once the login throttle has locked the
// account or the address, and htmx swaps no error answer by default. The answer is the form
// with the sentence that says how long to wait: show it.
document.addEventListener("htmx:beforeSwap", (event) => {
  const form = event.detail.requestConfig && event.detail.requestConfig.elt;
  if (event.detail.xhr.status === 429 && form && form.hasAttribute("data-swap-refusal")) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
