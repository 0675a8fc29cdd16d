// The live order feed shared by the blotter and My orders: a websocket that reconnects with
// backoff, a REST snapshot taken after every (re)subscription, and sequence numbers that reveal
// missed messages. A gap that a short wait does not fill (messages from two publishers may
// arrive out of order) means something was lost: take a fresh snapshot.
(function () {
  const GAP_WAIT_MS = 300;
  const MAX_BACKOFF_MS = 5000;

  function OrderFeed(opts) {
    this.opts = opts;
    this.seq = null;
    this.pending = new Map();
    this.gapTimer = null;
    this.backoff = 250;
    this.generation = 0;
    this.snapshotting = false;
    this.snapshotAgain = false;
    this.snapshots = 0;
    this.ws = null;
  }

  OrderFeed.prototype.start = function () { this.connect(); return this; };

  OrderFeed.prototype.state = function (name) {
    if (this.opts.onState) this.opts.onState(name);
  };

  OrderFeed.prototype.connect = function () {
    const self = this;
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(proto + "://" + location.host + this.opts.path);
    this.ws = ws;
    this.generation += 1;
    this.seq = null;
    this.pending.clear();
    ws.onmessage = function (event) {
      if (ws !== self.ws) return;
      const msg = JSON.parse(event.data);
      if (msg.type === "subscribed") {
        self.backoff = 250;
        self.state("live");
        self.snapshot();
      } else if (msg.type === "orders") {
        self.receive(msg);
      }
    };
    ws.onclose = function (event) {
      if (ws !== self.ws) return;
      if (event.code === 4401 || event.code === 4403) {
        self.state("refused");
        return;
      }
      self.state("reconnecting");
      const wait = self.backoff * (1 + Math.random() / 2);
      self.backoff = Math.min(self.backoff * 2, MAX_BACKOFF_MS);
      setTimeout(function () { self.connect(); }, wait);
    };
  };

  OrderFeed.prototype.snapshot = async function () {
    if (this.snapshotting) { this.snapshotAgain = true; return; }
    this.snapshotting = true;
    const generation = this.generation;
    let resp;
    try {
      // The columns form: the same rows in about half the bytes (names sent once).
      resp = await OMS.api("/api/blotter/snapshot/?form=columns&scope=" +
        encodeURIComponent(this.opts.scope));
    } catch (err) {
      resp = { ok: false };
    }
    this.snapshotting = false;
    if (generation !== this.generation) return;  // a reconnect started its own snapshot
    if (!resp.ok) {
      const self = this;
      setTimeout(function () { self.snapshot(); }, 1000);
      return;
    }
    this.seq = resp.body.seq;
    this.snapshots += 1;
    const columns = resp.body.columns;
    this.opts.onSnapshot(resp.body.rows.map(function (values) {
      const row = {};
      for (let i = 0; i < columns.length; i++) row[columns[i]] = values[i];
      return row;
    }));
    if (this.snapshotAgain) { this.snapshotAgain = false; this.snapshot(); return; }
    this.drain();
  };

  OrderFeed.prototype.receive = function (msg) {
    if (this.seq !== null && msg.seq <= this.seq) return;
    this.pending.set(msg.seq, msg);
    if (this.seq !== null) this.drain();
  };

  OrderFeed.prototype.drain = function () {
    for (const key of Array.from(this.pending.keys())) {
      if (key <= this.seq) this.pending.delete(key);
    }
    while (this.pending.has(this.seq + 1)) {
      const msg = this.pending.get(this.seq + 1);
      this.pending.delete(msg.seq);
      this.seq = msg.seq;
      this.opts.onRows(msg.rows);
    }
    const self = this;
    if (this.pending.size && !this.gapTimer) {
      this.gapTimer = setTimeout(function () {
        self.gapTimer = null;
        if (self.pending.size) self.snapshot();
      }, GAP_WAIT_MS);
    } else if (!this.pending.size && this.gapTimer) {
      clearTimeout(this.gapTimer);
      this.gapTimer = null;
    }
  };

  window.OMSOrderFeed = OrderFeed;
})();
