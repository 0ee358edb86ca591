// What the dashboard knows, built from the stream (snapshot, then changes) and from action answers.
//
// Alerts are kept by id and replaced only by a view of the same or a newer version, so a message
// that arrives twice (or an action's answer that crosses the stream's update) never shows an alert
// twice or steps it back.

import type { AlertView, Dispatch, StreamMessage, Team, Track } from "../lib/types";
import { ACTIVE_DISPATCH } from "../lib/types";
import { applyAlertChanges, applyTrackMoved } from "../lib/compact";

export interface TrackEntry {
  track: Track;
  trail: [number, number][];
  trailTimes: number[];
}

export type Change =
  | { kind: "reset" }
  | { kind: "alert"; id: string; fresh: boolean; live: boolean }
  | { kind: "alert_removed"; id: string }
  | { kind: "track"; id: string }
  | { kind: "track_removed"; id: string }
  | { kind: "dispatch"; id: string; teamId: string };

const TRAIL_S = 180;
const TRAIL_POINTS = 90;

export class DashboardState {
  readonly alerts = new Map<string, AlertView>();
  readonly tracks = new Map<string, TrackEntry>();
  readonly dispatches = new Map<string, Dispatch>();
  readonly teams = new Map<string, Team>();
  /** Alert views received again at a version already shown (a resumed stream must send none). */
  repeats = 0;
  /** Compact messages applied (track_moved, alert_changed), for the browser tests. */
  compact = 0;
  private streamed = new Map<string, number>();
  private listeners: ((changes: Change[]) => void)[] = [];

  subscribe(listener: (changes: Change[]) => void): void {
    this.listeners.push(listener);
  }

  private emit(changes: Change[]): void {
    if (changes.length === 0) return;
    for (const listener of this.listeners) listener(changes);
  }

  setTeams(teams: Team[]): void {
    this.teams.clear();
    for (const team of teams) this.teams.set(team.team_id, team);
    this.emit([{ kind: "reset" }]);
  }

  /** Apply one stream message. */
  apply(message: StreamMessage, live = true): void {
    const changes: Change[] = [];
    switch (message.type) {
      case "snapshot": {
        this.alerts.clear();
        this.dispatches.clear();
        this.streamed.clear();
        const previous = new Map(this.tracks);
        this.tracks.clear();
        for (const view of message.alerts) {
          this.alerts.set(view.alert.alert_id, view);
          this.streamed.set(view.alert.alert_id, view.version);
        }
        for (const dispatch of message.dispatches) this.dispatches.set(dispatch.dispatch_id, dispatch);
        for (const track of message.tracks) {
          const entry = previous.get(track.track_id) ?? { track, trail: [], trailTimes: [] };
          this.tracks.set(track.track_id, entry);
          this.moveTrack(entry, track);
        }
        changes.push({ kind: "reset" });
        break;
      }
      case "alert":
      case "alert_update": {
        const change = this.putAlert(message.data, live);
        if (change) changes.push(change);
        break;
      }
      case "alert_changed": {
        // the server sends one only for an alert this stream has carried whole
        const known = this.alerts.get(message.alert_id);
        if (!known) break;
        this.compact += 1;
        const change = this.putAlert(applyAlertChanges(known, message.set, message.version), live);
        if (change) changes.push(change);
        break;
      }
      case "alert_removed":
        this.streamed.delete(message.alert_id);
        if (this.alerts.delete(message.alert_id)) changes.push({ kind: "alert_removed", id: message.alert_id });
        break;
      case "track": {
        const track = message.data;
        let entry = this.tracks.get(track.track_id);
        if (!entry) {
          entry = { track, trail: [], trailTimes: [] };
          this.tracks.set(track.track_id, entry);
        }
        this.moveTrack(entry, track);
        changes.push({ kind: "track", id: track.track_id });
        break;
      }
      case "track_moved": {
        const entry = this.tracks.get(message.track_id);
        if (!entry) break;
        this.compact += 1;
        this.moveTrack(entry, applyTrackMoved(entry.track, message.m));
        changes.push({ kind: "track", id: message.track_id });
        break;
      }
      case "track_removed":
        if (this.tracks.delete(message.track_id)) changes.push({ kind: "track_removed", id: message.track_id });
        break;
      case "dispatch_update": {
        const dispatch = message.data;
        const known = this.dispatches.get(dispatch.dispatch_id);
        if (!known || Date.parse(known.updated_at) <= Date.parse(dispatch.updated_at)) {
          this.dispatches.set(dispatch.dispatch_id, dispatch);
          changes.push({ kind: "dispatch", id: dispatch.dispatch_id, teamId: dispatch.team_id });
        }
        break;
      }
      default:
        break;
    }
    this.emit(changes);
  }

  /** An alert view from an action's answer (REST): applied like a stream update. */
  applyView(view: AlertView): void {
    const change = this.putAlert(view, true, false);
    if (change) this.emit([change]);
  }

  private putAlert(view: AlertView, live: boolean, fromStream = true): Change | null {
    const id = view.alert.alert_id;
    const known = this.alerts.get(id);
    if (fromStream) {
      const streamed = this.streamed.get(id);
      if (streamed !== undefined && view.version <= streamed) this.repeats += 1;
      this.streamed.set(id, Math.max(streamed ?? 0, view.version));
    }
    if (known && known.version > view.version) return null;
    if (known && known.version === view.version && !fromStream) return null;
    this.alerts.set(id, view);
    if (view.dispatch) {
      const current = this.dispatches.get(view.dispatch.dispatch_id);
      if (!current || Date.parse(current.updated_at) <= Date.parse(view.dispatch.updated_at)) {
        this.dispatches.set(view.dispatch.dispatch_id, { ...current, ...view.dispatch });
      }
    }
    return { kind: "alert", id, fresh: !known, live };
  }

  private moveTrack(entry: TrackEntry, track: Track): void {
    entry.track = track;
    const time = Date.parse(track.time);
    const last = entry.trailTimes[entry.trailTimes.length - 1];
    if (last === undefined || time > last) {
      entry.trail.push([track.lat, track.lon]);
      entry.trailTimes.push(time);
    }
    while (
      entry.trail.length > TRAIL_POINTS ||
      (entry.trailTimes.length > 1 && time - entry.trailTimes[0]! > TRAIL_S * 1000)
    ) {
      entry.trail.shift();
      entry.trailTimes.shift();
    }
  }

  /** The team's current (active) dispatch, if any. */
  activeDispatchOf(teamId: string): Dispatch | null {
    let found: Dispatch | null = null;
    for (const dispatch of this.dispatches.values()) {
      if (dispatch.team_id !== teamId || !ACTIVE_DISPATCH.includes(dispatch.status)) continue;
      if (!found || Date.parse(dispatch.offered_at) > Date.parse(found.offered_at)) found = dispatch;
    }
    return found;
  }

  /** Track ids named by open alerts (drawn as suspect). */
  suspectTracks(): Set<string> {
    const out = new Set<string>();
    for (const view of this.alerts.values()) {
      if (view.status === "resolved" || view.status === "false_alarm") continue;
      for (const id of view.alert.track_ids ?? []) out.add(id);
    }
    return out;
  }
}

/** A person has acted on the alert (an automatic dispatch by Lindero itself does not count). */
export function attended(view: AlertView): boolean {
  return view.history.some((entry) => entry.actor && ["operator", "supervisor", "admin"].includes(entry.actor.role));
}

/** A critical alert still open that no person has acted on: the banner and the sound are for it. */
export function needsAttention(view: AlertView): boolean {
  return (
    view.alert.severity === "critical" &&
    (view.status === "new" || view.status === "acknowledged" || view.status === "dispatched") &&
    (view.status === "new" || !attended(view))
  );
}

