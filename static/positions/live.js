// Live positions: the server says which account changed; the page refetches its own table.
(function () {
  const box = document.getElementById("holdings");
  const status = document.getElementById("live-status");
  if (!box || !box.dataset.liveWs) return;
  let pending = false;
  let again = false;

  async function refresh() {
    if (pending) { again = true; return; }
    pending = true;
    try {
      const url = new URL(window.location.href);
      url.searchParams.set("partial", "1");
      const resp = await fetch(url, { credentials: "same-origin" });
      if (resp.ok) {
        box.innerHTML = await resp.text();
        OMS.enhance(box);
        box.dataset.updatedAt = String(Date.now());
      }
    } finally {
      pending = false;
      if (again) { again = false; refresh(); }
    }
  }

  let delay = 500;
  function connect() {
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + window.location.host + box.dataset.liveWs);
    ws.onmessage = function (event) {
      const msg = JSON.parse(event.data);
      if (msg.type === "subscribed") {
        status.textContent = "live";
        status.dataset.state = "live";
        delay = 500;
      } else if (msg.type === "quotes") {
        if (window.OMSQuotes) window.OMSQuotes.apply(msg);
      } else if (msg.type === "changed") {
        refresh();
      }
    };
    ws.onclose = function (event) {
      status.dataset.state = "closed";
      if (event.code === 4401 || event.code === 4403) {
        status.textContent = "live updates unavailable";
        return;
      }
      status.textContent = "reconnecting…";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  connect();
})();
