// What the alerts service sends (schemas/ and services/alerts/domain/sharing.py are the source of
// truth; these interfaces only name what the pages read). Views are already redacted by the server:
// a field may be missing, empty or null because a sharing agreement withholds it.

export type Severity = "info" | "low" | "medium" | "high" | "critical";
export type AlertStatus = "new" | "acknowledged" | "dispatched" | "resolved" | "false_alarm";
export type DispatchStatus =
  | "offered"
  | "accepted"
  | "declined"
  | "on_scene"
  | "completed"
  | "expired"
  | "cancelled";
export type Role = "operator" | "supervisor" | "team" | "admin" | "system";
export type Access = "full" | "shared" | "team";
export type TrackStatus = "tentative" | "confirmed" | "coasting" | "lost";
export type TargetClass = "person" | "vehicle" | "aircraft" | "vessel" | "animal" | "unknown";

export const SEVERITIES: readonly Severity[] = ["info", "low", "medium", "high", "critical"];
export const SEVERITY_RANK: Record<Severity, number> = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };
export const OPEN_STATUSES: readonly AlertStatus[] = ["new", "acknowledged", "dispatched"];
export const ALERT_STATUSES: readonly AlertStatus[] = [
  "new",
  "acknowledged",
  "dispatched",
  "resolved",
  "false_alarm",
];
export const ACTIVE_DISPATCH: readonly DispatchStatus[] = ["offered", "accepted", "on_scene"];

export interface Owner {
  country: string;
  agency?: string | null;
}

export interface Actor {
  subject: string;
  role: Role;
  country?: string | null;
  centre?: string | null;
  team?: string | null;
}

export interface HistoryEntry {
  time: string;
  action?: string | null;
  status: AlertStatus;
  actor?: Actor | null;
  note?: string | null;
  action_id?: string | null;
}

export interface Alert {
  alert_id: string;
  revision: number;
  kind: string;
  severity: Severity;
  time: string;
  updated_at: string;
  lat: number;
  lon: number;
  region: string;
  jurisdiction?: string | null;
  owner?: Owner;
  contributors?: Owner[];
  track_ids?: string[];
  sensor_ids?: string[];
  border_distance_m?: number | null;
  summary: string;
  evidence?: string[];
  details?: Record<string, unknown>;
  status?: AlertStatus;
}

export interface Dispatch {
  dispatch_id: string;
  alert_id: string;
  team_id: string;
  status: DispatchStatus;
  lat: number;
  lon: number;
  region: string;
  kind: string;
  severity: Severity;
  summary: string;
  distance_m: number;
  escalation: number;
  offered_at: string;
  accept_by: string;
  updated_at: string;
  by?: Actor | null;
  delivery?: string;
  history?: HistoryEntry[];
  access?: Access;
}

export interface AlertView {
  alert: Alert;
  status: AlertStatus;
  version: number;
  updated_at: string;
  history: HistoryEntry[];
  dispatch?: Dispatch | null;
  suggested_team?: string | null;
  teams_offered?: string[];
  notice?: string | null;
  access: Access;
  agreement?: string | null;
  redacted: string[];
  actionable: boolean;
}

export interface Track {
  track_id: string;
  region: string;
  time: string;
  lat: number;
  lon: number;
  alt_m?: number | null;
  velocity_east_mps: number;
  velocity_north_mps: number;
  speed_mps: number;
  heading_deg: number;
  position_sigma_m: number;
  status: TrackStatus;
  class: TargetClass;
  sensor_ids?: string[];
  owners?: Owner[];
  jurisdiction?: string | null;
  border_distance_m?: number | null;
  update_count?: number;
  access?: Access;
  agreement?: string | null;
  redacted?: string[];
}

export interface Team {
  team_id: string;
  name: string;
  country: string;
  region: string;
  base: { lat: number; lon: number };
  capabilities: string[];
  available: boolean;
  on_duty: boolean;
  busy: boolean;
}

export interface Me {
  subject: string;
  role: Role;
  country?: string | null;
  agency?: string | null;
  centre?: string | null;
  team?: string | null;
  regions?: string[] | null;
  expires_at: string;
}

export type Ring = [number, number][];

export interface MapRegion {
  id: string;
  name: string;
  countries: string[];
  area: Ring;
  origin: { lat: number; lon: number };
}

export interface MapZone {
  id: string;
  name: string;
  region: string;
  area: Ring;
  severity: Severity;
}

export interface MapSensor {
  id: string;
  name?: string | null;
  type: "radar" | "drone" | "ground";
  region: string;
  owner: Owner;
  lat: number;
  lon: number;
  range_m?: number | null;
}

export interface MapData {
  regions: MapRegion[];
  geography: GeoJSON.FeatureCollection;
  zones: MapZone[];
  sensors: MapSensor[];
  teams: Team[];
  centres: { id: string; name: string; country: string; regions: string[] }[];
  tiles?: { url: string; attribution?: string | null } | null;
}

// -- the websocket -----------------------------------------------------------------------------

export type Cursor = Record<string, number>;

export interface Frame {
  type: "batch";
  seq: number;
  time: number;
  cursor: Cursor;
  messages: StreamMessage[];
}

export type StreamMessage =
  | { type: "welcome"; connection_id: string; role: Role; expires_at: string }
  | {
      type: "snapshot";
      resync: boolean;
      cursor: Cursor;
      alerts: AlertView[];
      tracks: Track[];
      dispatches: Dispatch[];
    }
  | { type: "resume"; missed: number }
  | { type: "alert"; data: AlertView }
  | { type: "alert_update"; data: AlertView }
  | { type: "alert_changed"; alert_id: string; version: number; set: Record<string, unknown> }
  | { type: "alert_removed"; alert_id: string }
  | { type: "track"; data: Track }
  | { type: "track_moved"; track_id: string; m: unknown[] }
  | { type: "track_removed"; track_id: string }
  | { type: "dispatch_update"; data: Dispatch }
  | {
      type: "action_result";
      id?: string | null;
      alert_id: string;
      status: number;
      outcome: string;
      detail?: string;
      version?: number;
    }
  | { type: "pong"; id?: string | null; time: number }
  | { type: "error"; status: number; detail: string }
  | { type: "auth_expiring"; in_s: number }
  | { type: "auth_ok"; expires_at: string };
