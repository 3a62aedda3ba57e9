// The console's few scripts: fill a directory entry's name from the FusionPBX picker, and upload documents
// (several, dropped or chosen) one after another with their progress. Everything else is plain forms.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  for (const select of document.querySelectorAll("select[data-fills]")) {
    // The name follows the picked destination unless the admin typed one of their own.
    const target = document.getElementById(select.dataset.fills);
    let filled = select.selectedOptions[0] ? select.selectedOptions[0].dataset.name : undefined;
    select.addEventListener("change", () => {
      const option = select.selectedOptions[0];
      if (target && option && option.dataset.name && (!target.value || target.value === filled)) {
        target.value = option.dataset.name;
      }
      filled = option ? option.dataset.name : undefined;
    });
  }

  const form = document.querySelector("form[data-upload]");
  if (!form) return;
  const input = form.querySelector("input[type=file]");
  const list = form.querySelector(".progress");

  function upload(file) {
    const item = document.createElement("li");
    const bar = document.createElement("progress");
    bar.max = 100; bar.value = 0;
    item.append(file.name + " ", bar);
    list.append(item);
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.dataset.upload);
      xhr.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; };
      xhr.onload = () => {
        let text = "added";
        try {
          const body = JSON.parse(xhr.responseText);
          text = xhr.status < 300 ? `${body.status}, ${body.chunk_count} passages` : body.error.message;
        } catch (_) { text = `HTTP ${xhr.status}`; }
        bar.value = 100;
        item.append(" " + text);
        item.className = xhr.status < 300 ? "ok" : "error";
        resolve(xhr.status < 300);
      };
      xhr.onerror = () => { item.append(" failed: the service did not answer"); item.className = "error"; resolve(false); };
      const data = new FormData();
      data.append("file", file, file.name);
      xhr.send(data);
    });
  }

  async function send(files) {
    let allOk = true;
    for (const file of files) allOk = (await upload(file)) && allOk;
    if (allOk) window.location.reload();
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); if (input.files.length) send([...input.files]); });
  for (const type of ["dragenter", "dragover"]) {
    form.addEventListener(type, (e) => { e.preventDefault(); form.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    form.addEventListener(type, () => form.classList.remove("over"));
  }
  form.addEventListener("drop", (e) => { e.preventDefault(); send([...e.dataTransfer.files]); });
});
