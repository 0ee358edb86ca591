// The team view (served at /team/), made for a phone: the team's current dispatch, the target on a
// map, distance and bearing from where the team is (the browser's position when allowed, else the
// team's base), the answers (accept / decline / on scene / completed), and a notification the
// moment a new dispatch arrives.

import L from "leaflet";
import { Api, ApiError, uuid4 } from "../lib/api";
import { createBaseMap } from "../lib/basemap";
import { Session } from "../lib/auth";
import { ago, byId, clock, duration, h, latlon, metres, replaceChildren, words } from "../lib/dom";
import { bearingDeg, compass, distanceM, type Point } from "../lib/geo";
import { Cue } from "../lib/sound";
import { LiveStream, type ConnectionInfo } from "../lib/stream";
import { symbol, teamSidc } from "../lib/symbols";
import type { AlertView, Dispatch, MapData, StreamMessage, Team } from "../lib/types";
import { ACTIVE_DISPATCH } from "../lib/types";

type Answer = "accept" | "decline" | "on_scene" | "completed";

const ANSWERS: Record<Answer, { label: string; from: Dispatch["status"][]; done: string }> = {
  accept: { label: "Accept", from: ["offered"], done: "Accepted" },
  decline: { label: "Decline", from: ["offered"], done: "Declined" },
  on_scene: { label: "On scene", from: ["accepted"], done: "On scene" },
  completed: { label: "Completed", from: ["accepted", "on_scene"], done: "Completed" },
};

interface Position extends Point {
  accuracy: number | null;
  source: "device" | "base";
}

function toast(message: string, kind: "ok" | "error" | "info" = "ok"): void {
  const box = byId("toasts");
  const item = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : null }, message);
  box.append(item);
  window.setTimeout(() => item.remove(), kind === "error" ? 10_000 : 5_000);
}

function showConnection(info: ConnectionInfo): void {
  const element = byId("connection");
  element.dataset.state = info.state;
  element.textContent =
    info.state === "live"
      ? "Live"
      : info.state === "connecting"
        ? "Connecting…"
        : info.state === "reconnecting"
          ? `Reconnecting${info.attempt ? ` (${info.attempt})` : ""}…`
          : `Offline · ${info.reason ?? ""}`;
  element.title = info.reason ?? "";
}

async function main(): Promise<void> {
  const session = new Session("team");
  byId("sign-out").addEventListener("click", () => session.signOut());
  const me = await session.signIn((who) =>
    who.role !== "team" || !who.team
      ? `This token is for ${who.role === "team" ? "no team" : `a${who.role === "admin" ? "n" : ""} ${who.role}`}: the command dashboard is at /.`
      : null,
  );
  const teamId = me.team!;
  const api = new Api(
    () => session.token,
    (_, detail) => session.signOut(detail),
  );
  const data = await api.get<MapData>("/v1/map");
  const team: Team | undefined = data.teams.find((t) => t.team_id === teamId);
  byId("team-name").textContent = team ? `${team.name}` : teamId;
  byId("team-id").textContent = `${teamId}${team ? ` · ${team.region}` : ""}`;
  document.body.classList.add("ready");

  const alerts = new Map<string, AlertView>();
  const dispatches = new Map<string, Dispatch>();
  const cue = new Cue();
  let position: Position | null = team ? { ...team.base, accuracy: null, source: "base" } : null;
  let busy = false;
  let declineArmed: number | null = null;

  // -- the map -----------------------------------------------------------------------------------
  const base = createBaseMap(byId("map"), data, { zoomControl: true });
  for (const zone of data.zones) {
    L.polygon(
      zone.area.map(([lon, lat]) => [lat, lon] as L.LatLngTuple),
      { pane: "zones", color: "#c62828", weight: 2, fillColor: "#ef5350", fillOpacity: 0.25 },
    )
      .bindTooltip(zone.name)
      .addTo(base.map);
  }
  const made = symbol(teamSidc(team?.capabilities ?? []), 20);
  const selfMarker = L.marker(position ? [position.lat, position.lon] : [0, 0], {
    pane: "teams",
    keyboard: false,
    icon: L.divIcon({
      className: "team-symbol self",
      html: made.svg,
      iconSize: [made.width, made.height],
      iconAnchor: [made.anchorX, made.anchorY],
    }),
  });
  if (position) selfMarker.addTo(base.map);
  const accuracy = L.circle([0, 0], { radius: 1, pane: "zones", color: "#1565c0", weight: 1, fillOpacity: 0.08 });
  const targetMarker = L.marker([0, 0], {
    pane: "alerts",
    keyboard: false,
    icon: L.divIcon({ className: "alert-marker target", html: `<span class="ring"></span><span class="dot"></span>`, iconSize: [28, 28], iconAnchor: [14, 14] }),
  });
  const line = L.polyline([], { pane: "trails", color: "#1565c0", weight: 3, dashArray: "8 6" });
  let framed: string | null = null;

  // -- what is current ---------------------------------------------------------------------------
  const current = (): Dispatch | null => {
    let found: Dispatch | null = null;
    for (const d of dispatches.values()) {
      if (d.team_id !== teamId || !ACTIVE_DISPATCH.includes(d.status)) continue;
      if (!found || Date.parse(d.offered_at) > Date.parse(found.offered_at)) found = d;
    }
    return found;
  };

  let card: { id: string; parts: Record<"head" | "summary" | "range" | "where" | "when" | "answers", HTMLElement> } | null =
    null;
  let answersKey = "";

  const render = (): void => {
    const dispatch = current();
    const root = byId("current");
    if (!dispatch) {
      card = null;
      root.dataset.state = "none";
      root.removeAttribute("data-dispatch-id");
      replaceChildren(
        root,
        h(
          "div",
          { class: "waiting" },
          h("h2", null, "No current dispatch"),
          h("p", null, "Stand by. A new dispatch shows here at once, with a sound and a notification."),
        ),
      );
      targetMarker.remove();
      line.remove();
      framed = null;
      renderPast();
      return;
    }
    if (!card || card.id !== dispatch.dispatch_id) {
      // One card per dispatch: renders refill its parts and rebuild the buttons only when the
      // dispatch's status changes (a button never vanishes under a finger).
      const part = (name: string, tag: "div" | "p" = "div"): HTMLElement => h(tag, { class: name });
      card = {
        id: dispatch.dispatch_id,
        parts: {
          head: part("row-top"),
          summary: part("summary-wrap"),
          range: part("range"),
          where: part("where", "p"),
          when: part("when", "p"),
          answers: part("answers"),
        },
      };
      card.parts.range.id = "range";
      card.parts.when.id = "when";
      answersKey = "";
      replaceChildren(root, h("div", { class: "dispatch" }, Object.values(card.parts)));
    }
    const parts = card.parts;
    const view = alerts.get(dispatch.alert_id);
    const target: Point = { lat: dispatch.lat, lon: dispatch.lon };
    const from = position;
    const distance = from ? distanceM(from, target) : null;
    const bearing = from ? bearingDeg(from, target) : null;
    const left = dispatch.status === "offered" ? (Date.parse(dispatch.accept_by) - Date.now()) / 1000 : null;
    root.dataset.state = dispatch.status;
    root.dataset.dispatchId = dispatch.dispatch_id;
    (root.firstElementChild as HTMLElement).className = `dispatch dispatch-${dispatch.status}`;
    replaceChildren(
      parts.head,
      h("span", { class: `badge sev sev-${dispatch.severity}` }, dispatch.severity),
      h("span", { class: "kind" }, words(dispatch.kind)),
      h("span", { class: `badge dispatch dispatch-${dispatch.status}`, id: "dispatch-status" }, words(dispatch.status)),
    );
    replaceChildren(parts.summary, h("h2", { id: "dispatch-summary" }, view?.alert.summary ?? dispatch.summary));
    replaceChildren(
      parts.range,
      h("span", { class: "distance", id: "distance" }, distance === null ? "?" : metres(distance)),
      h(
        "span",
        { class: "bearing", id: "bearing" },
        bearing === null ? "" : `${String(Math.round(bearing)).padStart(3, "0")}° ${compass(bearing)}`,
      ),
      h(
        "span",
        { class: "from", id: "range-from", "data-source": from?.source ?? "none" },
        from?.source === "device"
          ? `from your position${from.accuracy ? ` (±${Math.round(from.accuracy)} m)` : ""}`
          : from
            ? "from your base (location not shared)"
            : "your position is unknown",
      ),
    );
    parts.where.textContent = `Target ${latlon(dispatch.lat, dispatch.lon)}`;
    parts.when.textContent =
      `Offered ${ago(dispatch.offered_at)} (${clock(dispatch.offered_at)})` +
      (left !== null ? (left > 0 ? ` · accept within ${duration(left)}` : " · the offer is expiring") : "");
    const key = `${dispatch.status}|${busy}|${declineArmed !== null}`;
    if (key !== answersKey) {
      answersKey = key;
      replaceChildren(
        parts.answers,
        (Object.keys(ANSWERS) as Answer[])
          .filter((answer) => ANSWERS[answer].from.includes(dispatch.status))
          .map((answer) =>
            h(
              "button",
              {
                type: "button",
                id: `answer-${answer}`,
                class: answer === "decline" ? "danger" : "primary",
                disabled: busy,
                onclick: () => {
                  const now = current();
                  if (now) void answerWith(now, answer);
                },
              },
              answer === "decline" && declineArmed !== null ? "Tap again to decline" : ANSWERS[answer].label,
            ),
          ),
      );
    }
    targetMarker.setLatLng([target.lat, target.lon]).addTo(base.map);
    if (from) {
      line
        .setLatLngs([
          [from.lat, from.lon],
          [target.lat, target.lon],
        ])
        .addTo(base.map);
    }
    if (framed !== dispatch.dispatch_id) {
      framed = dispatch.dispatch_id;
      const bounds = L.latLngBounds([[target.lat, target.lon]]);
      if (from) bounds.extend([from.lat, from.lon]);
      base.map.fitBounds(bounds.pad(0.3), { maxZoom: 16 });
    }
    renderPast();
  };

  const renderPast = (): void => {
    const past = [...dispatches.values()]
      .filter((d) => d.team_id === teamId && !ACTIVE_DISPATCH.includes(d.status))
      .sort((a, b) => Date.parse(b.updated_at) - Date.parse(a.updated_at))
      .slice(0, 5);
    replaceChildren(
      byId("past"),
      past.length
        ? past.map((d) =>
            h("li", { "data-dispatch-id": d.dispatch_id }, `${clock(d.updated_at)} · ${words(d.kind)} · ${words(d.status)}`),
          )
        : h("li", { class: "empty" }, "None yet."),
    );
  };

  const answerWith = async (dispatch: Dispatch, answer: Answer): Promise<void> => {
    if (busy) return;
    if (answer === "decline" && declineArmed === null) {
      declineArmed = window.setTimeout(() => {
        declineArmed = null;
        render();
      }, 4_000);
      render();
      return;
    }
    if (declineArmed !== null) {
      window.clearTimeout(declineArmed);
      declineArmed = null;
    }
    busy = true;
    render();
    try {
      await api.post(`/v1/dispatches/${encodeURIComponent(dispatch.dispatch_id)}/answer`, {
        answer,
        action_id: uuid4(),
      });
      toast(ANSWERS[answer].done, "ok");
      const known = dispatches.get(dispatch.dispatch_id);
      const next: Record<Answer, Dispatch["status"]> = {
        accept: "accepted",
        decline: "declined",
        on_scene: "on_scene",
        completed: "completed",
      };
      if (known && known.status === dispatch.status) {
        // shown at once; the live feed confirms it (and wins if it says otherwise)
        dispatches.set(dispatch.dispatch_id, { ...known, status: next[answer] });
      }
    } catch (error) {
      toast(`Refused: ${error instanceof ApiError ? error.detail : String(error)}`, "error");
    } finally {
      busy = false;
      render();
    }
  };

  // -- new dispatches: banner, sound, vibration, system notification ------------------------------
  const announce = (dispatch: Dispatch): void => {
    const banner = byId("new-dispatch");
    banner.dataset.dispatchId = dispatch.dispatch_id;
    replaceChildren(banner, h("strong", null, "New dispatch: "), `${words(dispatch.kind)} · ${dispatch.summary}`);
    banner.hidden = false;
    window.setTimeout(() => {
      if (banner.dataset.dispatchId === dispatch.dispatch_id) banner.hidden = true;
    }, 30_000);
    cue.play([
      [988, 0.18],
      [0, 0.08],
      [988, 0.18],
      [0, 0.08],
      [1319, 0.3],
    ]);
    navigator.vibrate?.([300, 120, 300]);
    if ("Notification" in window && Notification.permission === "granted") {
      try {
        new Notification("Lindero: new dispatch", { body: dispatch.summary, tag: dispatch.dispatch_id });
      } catch {
        // some mobile browsers only notify from a service worker; the banner and sound remain
      }
    }
  };
  byId("new-dispatch").addEventListener("click", () => {
    byId("new-dispatch").hidden = true;
  });
  const notifyButton = byId<HTMLButtonElement>("enable-notifications");
  if ("Notification" in window && Notification.permission === "default" && window.isSecureContext) {
    notifyButton.hidden = false;
    notifyButton.addEventListener("click", () => {
      void Notification.requestPermission().then(() => {
        notifyButton.hidden = true;
      });
    });
  }

  // -- position ----------------------------------------------------------------------------------
  const movedTo = (next: Position): void => {
    position = next;
    selfMarker.setLatLng([next.lat, next.lon]).addTo(base.map);
    if (next.accuracy) accuracy.setLatLng([next.lat, next.lon]).setRadius(next.accuracy).addTo(base.map);
    render();
  };
  if ("geolocation" in navigator && window.isSecureContext) {
    navigator.geolocation.watchPosition(
      (fix) => movedTo({ lat: fix.coords.latitude, lon: fix.coords.longitude, accuracy: fix.coords.accuracy, source: "device" }),
      () => {
        if (team && position?.source !== "device") movedTo({ ...team.base, accuracy: null, source: "base" });
      },
      { enableHighAccuracy: true, maximumAge: 10_000, timeout: 30_000 },
    );
  }

  // -- the live feed -----------------------------------------------------------------------------
  const onMessage = (message: StreamMessage): void => {
    switch (message.type) {
      case "snapshot":
        alerts.clear();
        dispatches.clear();
        for (const view of message.alerts) alerts.set(view.alert.alert_id, view);
        for (const dispatch of message.dispatches) dispatches.set(dispatch.dispatch_id, dispatch);
        break;
      case "alert":
      case "alert_update": {
        const known = alerts.get(message.data.alert.alert_id);
        if (!known || known.version <= message.data.version) alerts.set(message.data.alert.alert_id, message.data);
        break;
      }
      case "alert_removed":
        alerts.delete(message.alert_id);
        break;
      case "dispatch_update": {
        const dispatch = message.data;
        const known = dispatches.get(dispatch.dispatch_id);
        if (known && Date.parse(known.updated_at) > Date.parse(dispatch.updated_at)) break;
        dispatches.set(dispatch.dispatch_id, dispatch);
        if (!known && dispatch.status === "offered" && dispatch.team_id === teamId) announce(dispatch);
        break;
      }
      case "error":
        toast(message.detail, "error");
        return;
      default:
        return;
    }
    render();
  };
  const stream = new LiveStream(`/v1/teams/${encodeURIComponent(teamId)}/stream`, () => session.token, {
    message: onMessage,
    state: showConnection,
    authFailed: (reason) => session.signOut(`The live feed refused the token: ${reason}`),
  });
  stream.start();
  render();
  window.setInterval(render, 5_000);
  window.lindero = { stream, cue, dispatches, alerts, me };
}

declare global {
  interface Window {
    lindero?: Record<string, unknown>;
  }
}

main().catch((error: unknown) => {
  console.error(error);
  const fatal = document.getElementById("fatal");
  if (fatal) {
    fatal.hidden = false;
    fatal.textContent = `The team view could not start: ${error instanceof Error ? error.message : String(error)}`;
  }
});
