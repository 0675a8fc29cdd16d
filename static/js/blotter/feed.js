// The live order feed shared by the blotter and My orders: one websocket that reconnects with
// backoff and resumes where it left off. Messages carry a sequence number within an epoch (one
// numbering of the group; a Redis restarted empty starts another). A reconnect names the last
// message applied (?since=&epoch=) and the server replays what was missed from the group's
// recent history, or answers "resync" when the history no longer covers it: only then a REST
// snapshot. A gap on an open socket that a short wait does not fill (two publishers may deliver
// out of order) asks the server for the same replay; if that does not fill it either, snapshot.
(function () {
  const GAP_WAIT_MS = 300;
  const MAX_BACKOFF_MS = 5000;

  function OrderFeed(opts) {
    this.opts = opts;
    this.seq = null;  // the last message applied; null until the first snapshot
    this.epoch = "";
    this.pending = new Map();
    this.gapTimer = null;
    this.gapAsked = false;
    this.backoff = 250;
    this.generation = 0;
    this.snapshotting = false;
    this.snapshotAgain = false;
    // What tests and the curious read: snapshots taken, reconnects resumed, messages replayed.
    this.snapshots = 0;
    this.resumes = 0;
    this.replayed = 0;
    this.ws = null;
  }

  OrderFeed.prototype.start = function () { this.connect(); return this; };

  OrderFeed.prototype.state = function (name) {
    if (this.opts.onState) this.opts.onState(name);
  };

  OrderFeed.prototype.connect = function () {
    const self = this;
    const proto = location.protocol === "https:" ? "wss" : "ws";
    // Sequence numbers are not secrets: the URL may carry them (a token never does).
    const resuming = this.seq !== null;
    const query = resuming
      ? "?since=" + this.seq + "&epoch=" + encodeURIComponent(this.epoch) : "";
    const ws = new WebSocket(proto + "://" + location.host + this.opts.path + query);
    this.ws = ws;
    this.generation += 1;
    this.pending.clear();
    this.gapClear();
    ws.onmessage = function (event) {
      if (ws !== self.ws) return;
      const msg = JSON.parse(event.data);
      if (msg.type === "subscribed") {
        self.backoff = 250;
        self.state("live");
        if (!resuming) {
          self.snapshot();
        } else if (msg.resumed !== undefined) {
          self.resumes += 1;
          self.replayed += msg.resumed;
        }
      } else if (msg.type === "resync") {
        self.snapshot();
      } else if (msg.type === "quotes") {
        if (window.OMSQuotes) window.OMSQuotes.apply(msg);
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
    if (generation !== this.generation) return;  // a reconnect resumes or snapshots itself
    if (!resp.ok) {
      const self = this;
      setTimeout(function () { self.snapshot(); }, 1000);
      return;
    }
    this.seq = resp.body.seq;
    this.epoch = resp.body.epoch || "";
    this.snapshots += 1;
    this.gapAsked = false;
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
    if (this.seq !== null && !this.snapshotting && this.epoch && msg.epoch
        && msg.epoch !== this.epoch) {
      // Another numbering (Redis restarted empty): our numbers mean nothing in it.
      this.pending.clear();
      this.pending.set(msg.seq, msg);
      this.snapshot();
      return;
    }
    if (this.seq !== null && msg.seq <= this.seq && msg.epoch === this.epoch) return;
    this.pending.set(msg.seq, msg);
    if (this.seq !== null && !this.snapshotting) this.drain();
  };

  OrderFeed.prototype.drain = function () {
    for (const [key, msg] of Array.from(this.pending.entries())) {
      const foreign = this.epoch && msg.epoch && msg.epoch !== this.epoch;
      if (key <= this.seq || foreign) this.pending.delete(key);
    }
    while (this.pending.has(this.seq + 1)) {
      const msg = this.pending.get(this.seq + 1);
      this.pending.delete(msg.seq);
      this.seq = msg.seq;
      // A snapshot taken before the group's first message has no epoch yet: the first
      // message that follows it on gives it.
      if (msg.epoch) this.epoch = msg.epoch;
      this.opts.onRows(msg.rows);
    }
    if (this.pending.size && !this.gapTimer) {
      this.gapTimer = setTimeout(this.gapWaited.bind(this), GAP_WAIT_MS);
    } else if (!this.pending.size) {
      this.gapClear();
    }
  };

  OrderFeed.prototype.gapWaited = function () {
    this.gapTimer = null;
    if (!this.pending.size) return;
    const ws = this.ws;
    if (!this.gapAsked && ws && ws.readyState === WebSocket.OPEN) {
      // Ask for what is missing from the server's history; a "resync" answer snapshots.
      this.gapAsked = true;
      ws.send(JSON.stringify({ type: "resume", since: this.seq, epoch: this.epoch }));
      this.gapTimer = setTimeout(this.gapWaited.bind(this), GAP_WAIT_MS * 3);
      return;
    }
    this.snapshot();
  };

  OrderFeed.prototype.gapClear = function () {
    if (this.gapTimer) clearTimeout(this.gapTimer);
    this.gapTimer = null;
    this.gapAsked = false;
  };

  window.OMSOrderFeed = OrderFeed;
})();
