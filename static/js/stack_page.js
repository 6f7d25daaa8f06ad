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

// The services table reads itself again every few seconds (its hx-trigger): not while the tab
// is hidden, where nobody reads it and each poll may cost the server an SSH session, and once
// at once when the tab shows again, so what it shows is fresh when someone looks.
document.addEventListener("htmx:beforeRequest", (event) => {
  const elt = event.detail.elt;
  if (document.hidden && elt && elt.hasAttribute("data-poll-visible")) {
    event.preventDefault();
  }
});
document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    return;
  }
  for (const elt of document.querySelectorAll("[data-poll-visible]")) {
    elt.dispatchEvent(new Event("services-visible"));
  }
});
