// The server form shows only the fields of the chosen way to log in: the private key when one is
// pasted, the one-time password when the panel logs in with it. Without this script every field
// shows, and the server ignores those the chosen way does not use.
(function () {
  "use strict";

  var FIELDS_OF_MODE = {
    paste: ["id_ssh_private_key"],
    password: ["id_ssh_password"],
  };
  var TOGGLED = ["id_ssh_private_key", "id_ssh_password"];

  function wrapperOf(id) {
    var field = document.getElementById(id);
    return field ? field.closest("form > div") : null;
  }

  function show(form) {
    var chosen = form.querySelector('input[name="key_mode"]:checked');
    var wanted = FIELDS_OF_MODE[chosen ? chosen.value : ""] || [];
    TOGGLED.forEach(function (id) {
      var wrapper = wrapperOf(id);
      if (wrapper) {
        wrapper.hidden = wanted.indexOf(id) === -1;
      }
    });
  }

  function start() {
    var choice = document.querySelector('input[name="key_mode"]');
    if (!choice || !choice.form) {
      return;  // No key to set here: the user owns none of the server's teams.
    }
    var form = choice.form;
    form.addEventListener("change", function (event) {
      if (event.target.name === "key_mode") {
        show(form);
      }
    });
    show(form);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
