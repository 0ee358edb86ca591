// The live picture on the map: zones, sensor sites and teams from /v1/map; tracks (MIL-STD-2525
// symbols by class and status, a trail of where they were, a leader to where they will be in a
// minute) and alerts (a marker per open alert, pulsing while nobody has acknowledged it) from the
// stream.

import L from "leaflet";
import { createBaseMap, type BaseMap } from "../lib/basemap";
import { clock, metres, words } from "../lib/dom";
import { ahead } from "../lib/geo";
import { classLabel, symbol, teamSidc, trackSidc } from "../lib/symbols";
import type { AlertView, MapData, Team } from "../lib/types";
import type { DashboardState } from "./state";

/** Velocity leaders show where a track will be in five minutes at its current velocity. */
const LEADER_S = 300;

interface TrackLayer {
  marker: L.Marker;
  trail: L.Polyline;
  leader: L.Polyline;
  sidc: string;
}

export class LiveMap {
  readonly base: BaseMap;
  private readonly tracks = new Map<string, TrackLayer>();
  private readonly alerts = new Map<string, { marker: L.Marker; key: string }>();
  private readonly teams = new Map<string, { marker: L.Marker; line: L.Polyline | null; key: string }>();
  private readonly trailRenderer: L.Renderer;
  private selected: string | null = null;

  constructor(
    container: HTMLElement,
    private readonly data: MapData,
    private readonly state: DashboardState,
    private readonly onSelect: (alertId: string) => void,
  ) {
    this.base = createBaseMap(container, data);
    this.trailRenderer = L.canvas({ pane: "trails", padding: 0.3 });
    this.drawZones();
    this.drawSensors();
    this.addLegend();
  }

  get map(): L.Map {
    return this.base.map;
  }

  private drawZones(): void {
    for (const zone of this.data.zones) {
      L.polygon(
        zone.area.map(([lon, lat]) => [lat, lon] as L.LatLngTuple),
        {
          pane: "zones",
          color: "#c62828",
          weight: 2,
          fillColor: "#ef5350",
          fillOpacity: 0.25,
          className: "zone",
        },
      )
        .bindTooltip(`Restricted zone: ${zone.name} (${zone.severity})`)
        .addTo(this.map);
    }
  }

  private drawSensors(): void {
    for (const sensor of this.data.sensors) {
      if (sensor.type === "radar" && sensor.range_m) {
        L.circle([sensor.lat, sensor.lon], {
          pane: "sensors",
          radius: sensor.range_m,
          color: "#5c6bc0",
          weight: 1,
          opacity: 0.35,
          fill: false,
          dashArray: "2 6",
          interactive: false,
        }).addTo(this.map);
      }
      const letter = sensor.type === "radar" ? "R" : sensor.type === "drone" ? "D" : "G";
      const marker = L.marker([sensor.lat, sensor.lon], {
        pane: "sensors",
        keyboard: false,
        icon: L.divIcon({
          className: `sensor sensor-${sensor.type}`,
          html: "",
          iconSize: [16, 16],
          iconAnchor: [8, 8],
        }),
      })
        .bindTooltip(`${sensor.name ?? sensor.id} · ${sensor.type} · ${sensor.owner.country}`)
        .addTo(this.map);
      const element = marker.getElement();
      if (element) {
        element.textContent = letter;
        element.dataset.sensorId = sensor.id;
      }
    }
  }

  private addLegend(): void {
    const Legend = L.Control.extend({
      onAdd: () => {
        const box = L.DomUtil.create("details", "map-legend") as HTMLDetailsElement;
        box.open = !window.matchMedia("(max-width: 700px)").matches;
        L.DomUtil.create("summary", "", box).textContent = "Legend";
        const row = (svg: string | null, text: string, className = ""): HTMLElement => {
          const line = L.DomUtil.create("div", `legend-row ${className}`, box);
          const glyph = L.DomUtil.create("span", "legend-glyph", line);
          if (svg) glyph.innerHTML = svg; // milsymbol's own SVG, built from constants
          L.DomUtil.create("span", "", line).textContent = text;
          return line;
        };
        row(symbol(trackSidc("person", "confirmed", false), 14).svg, "track, unknown (confirmed)");
        row(symbol(trackSidc("person", "confirmed", true), 14).svg, "track named by an open alert");
        row(symbol(trackSidc("vehicle", "coasting", false), 14).svg, "dashed: tentative or coasting");
        row(symbol(teamSidc(["foot"]), 14).svg, "response team (base)");
        row(null, "alert (pulses until acknowledged)", "legend-alert");
        row(null, "restricted zone", "legend-zone");
        row(null, "international border", "legend-border");
        L.DomEvent.disableClickPropagation(box);
        return box;
      },
    });
    new Legend({ position: "bottomleft" }).addTo(this.map);
  }

  // -- tracks ------------------------------------------------------------------------------------

  updateTrack(id: string, suspects: Set<string>): void {
    const entry = this.state.tracks.get(id);
    if (!entry) {
      this.removeTrack(id);
      return;
    }
    const track = entry.track;
    const sidc = trackSidc(track.class, track.status, suspects.has(id));
    let layer = this.tracks.get(id);
    const position: L.LatLngTuple = [track.lat, track.lon];
    const tip = ahead(track, track.velocity_east_mps, track.velocity_north_mps, LEADER_S);
    if (!layer) {
      const marker = L.marker(position, { pane: "tracks", icon: this.trackIcon(id, sidc), keyboard: false });
      const trail = L.polyline(entry.trail, {
        pane: "trails",
        renderer: this.trailRenderer,
        color: "#37474f",
        weight: 2,
        opacity: 0.7,
        interactive: false,
      });
      const leader = L.polyline([position, [tip.lat, tip.lon]], {
        pane: "trails",
        renderer: this.trailRenderer,
        color: "#263238",
        weight: 2,
        interactive: false,
      });
      layer = { marker, trail, leader, sidc };
      marker.bindTooltip(() => this.trackTooltip(id), { direction: "top", offset: [0, -12] });
      marker.addTo(this.map);
      trail.addTo(this.map);
      leader.addTo(this.map);
      this.tracks.set(id, layer);
    } else {
      layer.marker.setLatLng(position);
      layer.trail.setLatLngs(entry.trail);
      layer.leader.setLatLngs([position, [tip.lat, tip.lon]]);
      if (layer.sidc !== sidc) {
        layer.sidc = sidc;
        layer.marker.setIcon(this.trackIcon(id, sidc));
      }
    }
    const suspect = suspects.has(id);
    layer.trail.setStyle({ color: suspect ? "#c62828" : "#37474f", weight: suspect ? 3 : 2 });
    layer.leader.setStyle({ color: suspect ? "#b71c1c" : "#263238" });
    const element = layer.marker.getElement();
    if (element) {
      element.dataset.status = track.status;
      element.dataset.class = track.class;
      element.classList.toggle("suspect", suspect);
    }
  }

  private trackIcon(id: string, sidc: string): L.DivIcon {
    const made = symbol(sidc, 20);
    return L.divIcon({
      className: "track-symbol",
      html: `<span data-track-id="${encodeURIComponent(id)}">${made.svg}</span>`,
      iconSize: [made.width, made.height],
      iconAnchor: [made.anchorX, made.anchorY],
    });
  }

  private trackTooltip(id: string): HTMLElement {
    const entry = this.state.tracks.get(id);
    const box = document.createElement("div");
    if (!entry) return box;
    const t = entry.track;
    const lines = [
      `Track ${t.track_id}`,
      `${classLabel(t.class)} · ${t.status}`,
      `${t.speed_mps.toFixed(1)} m/s, heading ${Math.round(t.heading_deg)}°`,
      `±${Math.round(t.position_sigma_m)} m · ${clock(t.time)}`,
      t.jurisdiction ? `in ${t.jurisdiction}, ${metres(t.border_distance_m)} from the border` : "",
      t.access === "shared" ? `shared under ${t.agreement ?? "an agreement"}` : "",
    ];
    for (const line of lines.filter(Boolean)) {
      const div = document.createElement("div");
      div.textContent = line;
      box.appendChild(div);
    }
    return box;
  }

  removeTrack(id: string): void {
    const layer = this.tracks.get(id);
    if (!layer) return;
    layer.marker.remove();
    layer.trail.remove();
    layer.leader.remove();
    this.tracks.delete(id);
  }

  resetTracks(): void {
    for (const id of [...this.tracks.keys()]) {
      if (!this.state.tracks.has(id)) this.removeTrack(id);
    }
    const suspects = this.state.suspectTracks();
    for (const id of this.state.tracks.keys()) this.updateTrack(id, suspects);
  }

  // -- alerts ------------------------------------------------------------------------------------

  updateAlert(view: AlertView | undefined, id: string): void {
    const current = this.alerts.get(id);
    const closed = !view || view.status === "resolved" || view.status === "false_alarm";
    if (!view || (closed && this.selected !== id)) {
      current?.marker.remove();
      this.alerts.delete(id);
      return;
    }
    const alert = view.alert;
    const key = `${view.version}|${view.status}|${alert.severity}|${this.selected === id}`;
    if (current) {
      current.marker.setLatLng([alert.lat, alert.lon]);
      if (current.key === key) return;
      current.marker.remove();
    }
    const selected = this.selected === id;
    const marker = L.marker([alert.lat, alert.lon], {
      pane: "alerts",
      riseOnHover: true,
      keyboard: false,
      title: `${alert.severity} ${words(alert.kind)}: ${alert.summary}`,
      icon: L.divIcon({
        className: [
          "alert-marker",
          `sev-${alert.severity}`,
          `status-${view.status}`,
          selected ? "selected" : "",
        ].join(" "),
        html: `<span class="ring"></span><span class="dot"></span>`,
        iconSize: [26, 26],
        iconAnchor: [13, 13],
      }),
    });
    marker.on("click", () => this.onSelect(id));
    marker.addTo(this.map);
    const element = marker.getElement();
    if (element) {
      element.dataset.alertId = id;
      element.dataset.severity = alert.severity;
      element.dataset.status = view.status;
    }
    this.alerts.set(id, { marker, key });
  }

  resetAlerts(): void {
    for (const id of [...this.alerts.keys()]) {
      if (!this.state.alerts.has(id)) this.updateAlert(undefined, id);
    }
    for (const [id, view] of this.state.alerts) this.updateAlert(view, id);
  }

  select(id: string | null, pan: boolean): void {
    const previous = this.selected;
    this.selected = id;
    if (previous && previous !== id) this.updateAlert(this.state.alerts.get(previous), previous);
    if (id) {
      const view = this.state.alerts.get(id);
      this.updateAlert(view, id);
      if (view && pan) {
        const target = L.latLng(view.alert.lat, view.alert.lon);
        if (!this.map.getBounds().pad(-0.15).contains(target)) this.map.panTo(target);
      }
    }
  }

  // -- teams -------------------------------------------------------------------------------------

  updateTeams(): void {
    for (const team of this.state.teams.values()) this.updateTeam(team);
  }

  private updateTeam(team: Team): void {
    const dispatch = this.state.activeDispatchOf(team.team_id);
    const status = !team.on_duty ? "off-duty" : dispatch ? dispatch.status : "available";
    const key = `${status}|${dispatch?.dispatch_id ?? ""}`;
    let entry = this.teams.get(team.team_id);
    if (entry && entry.key === key) return;
    if (!entry) {
      const made = symbol(teamSidc(team.capabilities), 18);
      const marker = L.marker([team.base.lat, team.base.lon], {
        pane: "teams",
        keyboard: false,
        icon: L.divIcon({
          className: "team-symbol",
          html: `<span data-team-id="${encodeURIComponent(team.team_id)}">${made.svg}</span>`,
          iconSize: [made.width, made.height],
          iconAnchor: [made.anchorX, made.anchorY],
        }),
      }).addTo(this.map);
      entry = { marker, line: null, key: "" };
      this.teams.set(team.team_id, entry);
    }
    entry.key = key;
    entry.marker.unbindTooltip();
    entry.marker.bindTooltip(`${team.name} (${team.team_id}) · ${words(status)}`);
    entry.marker.getElement()?.setAttribute("data-status", status);
    entry.line?.remove();
    entry.line = null;
    if (dispatch) {
      entry.line = L.polyline(
        [
          [team.base.lat, team.base.lon],
          [dispatch.lat, dispatch.lon],
        ],
        { pane: "trails", color: "#1565c0", weight: 2, dashArray: "6 6", interactive: false },
      ).addTo(this.map);
    }
  }
}
