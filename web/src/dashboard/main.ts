// The command dashboard (served at /): live map, alert queue, detail and actions, teams.

import { Api } from "../lib/api";
import { Session } from "../lib/auth";
import { byId, clock, duration, h, replaceChildren } from "../lib/dom";
import { Cue } from "../lib/sound";
import { LiveStream, type ConnectionInfo } from "../lib/stream";
import type { MapData, Me, StreamMessage } from "../lib/types";
import { Detail, type ActionName } from "./detail";
import { LiveMap } from "./livemap";
import { Queue } from "./queue";
import { DashboardState, needsAttention, type Change } from "./state";
import { TeamsPanel } from "./teams";

const CRITICAL_REPEAT_MS = 20_000;

declare global {
  interface Window {
    lindero?: Record<string, unknown>;
  }
}

function toast(message: string, kind: "ok" | "error" | "info" = "ok"): void {
  const box = byId("toasts");
  const item = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : null }, message);
  box.append(item);
  window.setTimeout(() => item.remove(), kind === "error" ? 10_000 : 5_000);
}

function describeMe(me: Me, data: MapData): string {
  const centre = data.centres.find((c) => c.id === me.centre);
  const where = centre ? `${centre.name} (${centre.country})` : me.country ?? "all countries";
  return `${me.role} · ${me.subject} · ${where}`;
}

function showConnection(info: ConnectionInfo): void {
  const element = byId("connection");
  element.dataset.state = info.state;
  const now = Date.now();
  let text: string;
  switch (info.state) {
    case "connecting":
      text = "Connecting…";
      break;
    case "live":
      text = info.lastFrameAt ? `Live · ${clock(info.lastFrameAt)}` : "Live";
      break;
    case "reconnecting": {
      const wait = info.retryAt ? Math.max(0, Math.ceil((info.retryAt - now) / 1000)) : 0;
      text = `Reconnecting${info.attempt ? ` (attempt ${info.attempt}${wait ? `, in ${wait} s` : ""})` : ""}${info.reason ? ` · ${info.reason}` : ""}`;
      break;
    }
    default:
      text = `Offline · ${info.reason ?? "disconnected"}`;
  }
  element.textContent = text;
  element.title = info.connectionId ? `connection ${info.connectionId}` : "";
}

async function main(): Promise<void> {
  const session = new Session("dashboard");
  const signOut = (reason?: string): void => session.signOut(reason);
  byId("sign-out").addEventListener("click", () => signOut());
  const me = await session.signIn(
    (who) =>
      who.role === "team" ? `This token is for team ${who.team ?? "?"}: open the team view at /team/ with it.` : null,
  );
  const api = new Api(
    () => session.token,
    (_, detail) => signOut(detail),
  );
  const data = await api.get<MapData>("/v1/map");
  byId("who").textContent = describeMe(me, data);
  document.body.classList.add("ready");

  const state = new DashboardState();
  const cue = new Cue();
  // eslint-disable-next-line prefer-const
  let queue: Queue;
  const live = new LiveMap(byId("map"), data, state, (id) => queue.select(id, false));
  const detail = new Detail(state, me, api, toast, (lat, lon) => live.map.panTo([lat, lon]));
  queue = new Queue(state, data.regions, (id, pan) => {
    detail.show(id);
    live.select(id, pan);
  });
  const teams = new TeamsPanel(state, (id) => queue.select(id, true));
  state.setTeams(data.teams);

  if (data.regions.length > 1) {
    const buttons = byId("region-buttons");
    replaceChildren(
      buttons,
      h("button", { type: "button", onclick: () => live.base.fit() }, "All regions"),
      data.regions.map((region) =>
        h("button", { type: "button", "data-region": region.id, onclick: () => live.base.fit(region.id) }, region.name),
      ),
    );
  }

  // -- critical alerts: a banner while any is unacknowledged, a sound when one arrives ------------
  const banner = byId<HTMLButtonElement>("critical-banner");
  let lastCue = 0;
  const criticalOpen = (): string[] =>
    [...state.alerts.values()]
      .filter(needsAttention)
      .sort((a, b) => Date.parse(b.alert.time) - Date.parse(a.alert.time))
      .map((v) => v.alert.alert_id);
  const updateBanner = (): void => {
    const ids = criticalOpen();
    banner.hidden = ids.length === 0;
    document.body.classList.toggle("critical", ids.length > 0);
    if (ids.length) {
      const first = state.alerts.get(ids[0]!)!;
      banner.dataset.alertId = first.alert.alert_id;
      banner.textContent = `CRITICAL${ids.length > 1 ? ` ×${ids.length}` : ""}: ${first.alert.summary}`;
    }
    const fresh = [...state.alerts.values()].filter((v) => v.status === "new").length;
    document.title = `${fresh ? `(${fresh}) ` : ""}Lindero · command dashboard`;
  };
  banner.addEventListener("click", () => {
    if (banner.dataset.alertId) queue.select(banner.dataset.alertId, true);
  });
  window.setInterval(() => {
    if (criticalOpen().length && Date.now() - lastCue >= CRITICAL_REPEAT_MS) {
      lastCue = Date.now();
      cue.play();
    }
  }, 2_000);
  const sound = byId<HTMLButtonElement>("sound-toggle");
  const showSound = (): void => {
    sound.setAttribute("aria-pressed", String(!cue.muted));
    sound.textContent = cue.muted ? "Sound off" : "Sound on";
  };
  const toggleSound = (): void => {
    cue.muted = !cue.muted;
    showSound();
    toast(cue.muted ? "Critical alerts are silent (M turns the sound back on)." : "Critical alerts sound.", "info");
  };
  sound.addEventListener("click", toggleSound);
  showSound();

  // -- keep every part in step with the state ------------------------------------------------
  let suspects = new Set<string>();
  let detailTimer: number | null = null;
  const renderDetailSoon = (): void => {
    if (detailTimer !== null) return;
    detailTimer = window.setTimeout(() => {
      detailTimer = null;
      detail.render();
    }, 1_000);
  };
  state.subscribe((changes: Change[]) => {
    let alerts = false;
    for (const change of changes) {
      switch (change.kind) {
        case "reset":
          suspects = state.suspectTracks();
          live.resetAlerts();
          live.resetTracks();
          live.updateTeams();
          alerts = true;
          detail.render();
          teams.render();
          break;
        case "alert":
        case "alert_removed": {
          alerts = true;
          const view = state.alerts.get(change.id);
          live.updateAlert(view, change.id);
          const before = suspects;
          suspects = state.suspectTracks();
          for (const id of new Set([...before, ...suspects])) {
            if (before.has(id) !== suspects.has(id)) live.updateTrack(id, suspects);
          }
          if (change.id === detail.current) detail.render();
          if (
            change.kind === "alert" &&
            change.fresh &&
            change.live &&
            view &&
            needsAttention(view)
          ) {
            lastCue = Date.now();
            cue.play();
            toast(`Critical alert: ${view.alert.summary}`, "error");
          }
          teams.render();
          live.updateTeams();
          break;
        }
        case "track":
          live.updateTrack(change.id, suspects);
          if (detail.current && state.alerts.get(detail.current)?.alert.track_ids?.includes(change.id)) {
            renderDetailSoon();
          }
          break;
        case "track_removed":
          live.removeTrack(change.id);
          break;
        case "dispatch": {
          teams.render();
          live.updateTeams();
          const dispatch = state.dispatches.get(change.id);
          if (dispatch && dispatch.alert_id === detail.current) detail.render();
          break;
        }
      }
    }
    if (alerts) {
      queue.render();
      updateBanner();
    }
  });

  // -- the live feed ---------------------------------------------------------------------------
  const expiry = byId("expiry");
  const onMessage = (message: StreamMessage): void => {
    switch (message.type) {
      case "snapshot":
        state.apply(message, false);
        api
          .get<{ teams: MapData["teams"] }>("/v1/teams")
          .then((answer) => state.setTeams(answer.teams))
          .catch(() => undefined);
        break;
      case "auth_expiring":
        showExpiry(message.in_s);
        break;
      case "auth_ok":
        expiry.hidden = true;
        toast("Session extended.", "ok");
        break;
      case "error":
        toast(`Live feed: ${message.detail}`, "error");
        break;
      default:
        state.apply(message, true);
    }
  };
  let connection: ConnectionInfo | null = null;
  const stream = new LiveStream(
    "/v1/stream",
    () => session.token,
    {
      message: onMessage,
      state: (info) => {
        connection = info;
        showConnection(info);
      },
      authFailed: (reason) => signOut(`The live feed refused the token: ${reason}`),
    },
    // compact: track movements as small arrays, alert revisions as their changed fields only
    { tracks: true, compact_tracks: true, compact_alerts: true },
  );
  window.setInterval(() => {
    if (connection) showConnection(connection);
  }, 1_000);

  function showExpiry(inS: number): void {
    const field = h("input", {
      type: "text",
      id: "expiry-token",
      placeholder: "paste a fresh token",
      "aria-label": "Fresh token",
      autocomplete: "off",
    });
    const form = h(
      "form",
      { class: "expiry-form" },
      h("span", null, `Your session ends in ${duration(inS)}. `),
      field,
      h("button", { type: "submit" }, "Extend"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const token = field.value.trim();
      if (!token) return;
      if (stream.send({ type: "auth", token })) session.remember(token);
    });
    replaceChildren(expiry, form);
    expiry.hidden = false;
  }

  stream.start();

  // -- keyboard ---------------------------------------------------------------------------------
  const centreSelected = (): void => {
    const view = queue.selected ? state.alerts.get(queue.selected) : undefined;
    if (view) live.map.panTo([view.alert.lat, view.alert.lon]);
  };
  const help = byId<HTMLDialogElement>("help-dialog");
  byId("help-button").addEventListener("click", () => help.showModal());
  const shortcuts: Record<string, () => void> = {
    j: () => queue.move(1),
    ArrowDown: () => queue.move(1),
    k: () => queue.move(-1),
    ArrowUp: () => queue.move(-1),
    g: () => queue.first(),
    Home: () => queue.first(),
    G: () => queue.last(),
    End: () => queue.last(),
    Enter: () => centreSelected(),
    c: () => centreSelected(),
    a: () => void detail.trigger("acknowledge" as ActionName),
    d: () => void detail.trigger("dispatch"),
    r: () => void detail.trigger("resolve"),
    f: () => void detail.trigger("false_alarm"),
    m: toggleSound,
    "/": () => byId("filter-text").focus(),
    "?": () => help.showModal(),
    Escape: () => queue.select(null, false),
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    const target = event.target as HTMLElement | null;
    if (target?.closest("input, textarea, select, dialog, [contenteditable]")) {
      if (event.key === "Escape" && target.id === "filter-text") (target as HTMLInputElement).blur();
      return;
    }
    if (target?.closest("#map") && event.key.startsWith("Arrow")) return; // the map pans
    if (target?.closest("button") && event.key === "Enter") return;
    const action = shortcuts[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });

  window.lindero = { state, stream, cue, queue, detail, map: live.map, me };
}

main().catch((error: unknown) => {
  console.error(error);
  const app = document.getElementById("fatal");
  if (app) {
    app.hidden = false;
    app.textContent = `The dashboard could not start: ${error instanceof Error ? error.message : String(error)}`;
  }
});
