// Knowledge base uploads: every dropped or chosen file goes to the panel in pieces of its own
// requests (the raw bytes as the body, the name URI-encoded in a header), with a progress bar.
// Each file that arrives becomes a ticked box in the import form; one that is refused says why.
(function () {
  "use strict";

  function csrfToken(form) {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function extensionOf(name) {
    var dot = name.lastIndexOf(".");
    return dot > 0 ? name.slice(dot).toLowerCase() : "";
  }

  function row(list, file) {
    var item = document.createElement("li");
    var name = document.createElement("span");
    name.className = "name";
    name.textContent = file.name;
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", file.name);
    var note = document.createElement("span");
    note.className = "note";
    item.append(name, bar, note);
    list.appendChild(item);
    return { item: item, bar: bar, note: note };
  }

  function refuse(shown, message) {
    shown.item.classList.add("failed");
    shown.bar.remove();
    shown.note.textContent = message;
  }

  function setUp(zone) {
    var form = zone.parentElement.querySelector(".import-form");
    var staged = form.querySelector(".staged");
    var button = form.querySelector(".import-button");
    var list = zone.querySelector(".uploads");
    var input = zone.querySelector("input[type=file]");
    var limit = Number(zone.dataset.limit);
    var kinds = zone.dataset.extensions.split(",");
    var pieceBytes = Number(zone.dataset.piece);
    var pending = 0;

    function settle() {
      pending -= 1;
      button.disabled = pending > 0 || !staged.querySelector("input:checked");
    }

    function send(file) {
      var shown = row(list, file);
      if (kinds.indexOf(extensionOf(file.name)) < 0) {
        return refuse(shown, zone.dataset.wrongKind);
      }
      if (file.size > limit) {
        return refuse(shown, zone.dataset.tooLarge);
      }
      pending += 1;
      button.disabled = true;
      sendPiece(file, shown, 0, "");
    }

    // A file goes in pieces, one request each, so the panel never holds more than a piece.
    function sendPiece(file, shown, offset, token) {
      var end = Math.min(offset + pieceBytes, file.size);
      var request = new XMLHttpRequest();
      request.open("POST", zone.dataset.uploadUrl);
      request.setRequestHeader("X-CSRFToken", csrfToken(form));
      request.setRequestHeader("X-Upload-Name", encodeURIComponent(file.name));
      request.setRequestHeader("X-Upload-Size", String(file.size));
      request.setRequestHeader("X-Upload-Offset", String(offset));
      if (token) {
        request.setRequestHeader("X-Upload-Token", token);
      }
      request.setRequestHeader("Content-Type", "application/octet-stream");
      request.upload.addEventListener("progress", function (event) {
        shown.bar.value = Math.round((100 * (offset + event.loaded)) / file.size);
      });
      request.addEventListener("load", function () {
        var answer = {};
        try { answer = JSON.parse(request.responseText); } catch (error) { answer = {}; }
        if (request.status === 200 && answer.next) {
          return sendPiece(file, shown, answer.received, answer.next);
        }
        if (request.status === 200 && answer.id) {
          shown.bar.value = 100;
          shown.item.classList.add("uploaded");
          var label = document.createElement("label");
          var box = document.createElement("input");
          box.type = "checkbox";
          box.name = "documents";
          box.value = String(answer.id);
          box.checked = true;
          label.append(box, " " + answer.name);
          staged.appendChild(label);
        } else {
          refuse(shown, answer.error || request.statusText || String(request.status));
        }
        settle();
      });
      request.addEventListener("error", function () {
        refuse(shown, zone.dataset.interrupted);
        settle();
      });
      request.send(file.slice(offset, end));
    }

    function sendAll(files) {
      Array.prototype.forEach.call(files, send);
    }

    input.addEventListener("change", function () {
      sendAll(input.files);
      input.value = "";
    });
    zone.addEventListener("dragover", function (event) {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", function () {
      zone.classList.remove("over");
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("over");
      sendAll(event.dataTransfer.files);
    });
    staged.addEventListener("change", function () {
      button.disabled = pending > 0 || !staged.querySelector("input:checked");
    });
    // Files chosen before this point would not be sent: say when the zone takes them.
    zone.dataset.ready = "true";
  }

  document.querySelectorAll(".dropzone[data-upload-url]").forEach(setUp);
})();
