// An invitation link carries its token after "#", which the browser never sends to a server
// (so no access log holds it). Read it, take it out of the address bar and history, and POST it.
(function () {
  "use strict";
  var start = function () {
    var form = document.getElementById("invitation-open");
    var field = document.getElementById("invitation-token");
    var token = window.location.hash.slice(1);
    if (!form || !field || !token) return;
    history.replaceState(null, "", window.location.pathname);
    try {
      field.value = decodeURIComponent(token);
    } catch (error) {
      field.value = token;
    }
    form.submit();
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
