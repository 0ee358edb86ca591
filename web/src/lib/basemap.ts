// The map under the live picture: no tiles from the internet. Natural Earth (public domain) draws
// it: the whole world at 1:50m from the npm package world-atlas (served from /geo/), and, on top,
// each watched region's outlines and border lines at 1:10m as the alerts service sends them
// (/v1/map, the same lines the correlator measures crossings against). A site with its own tile
// server names it in the configuration (`display.tile_url`); then its tiles go underneath.

import L from "leaflet";
import { feature, mesh } from "topojson-client";
import type { GeometryCollection, Topology } from "topojson-specification";
import type { MapData, MapRegion } from "./types";

/** Each region's countries, told apart by a light tint (first, second...). */
const COUNTRY_FILLS = ["#f7f3e8", "#e8f0ee", "#f1ebf4", "#eef1e6"];

/** GeoJSON layers pass their options on to every shape they create (pane, renderer...). */
type GeoOptions = L.GeoJSONOptions & L.PathOptions;

export interface BaseMap {
  map: L.Map;
  regionBounds: Map<string, L.LatLngBounds>;
  allBounds: L.LatLngBounds | null;
  fit(region?: string): void;
}

const ring = (points: [number, number][]): L.LatLngExpression[] => points.map(([lon, lat]) => [lat, lon]);

export function regionPolygon(region: MapRegion): L.LatLngExpression[] {
  return ring(region.area);
}

export function createBaseMap(container: HTMLElement, data: MapData, options: L.MapOptions = {}): BaseMap {
  const map = L.map(container, {
    zoomControl: true,
    attributionControl: true,
    preferCanvas: false,
    minZoom: 3,
    maxZoom: 18,
    zoomSnap: 0.25,
    worldCopyJump: true,
    ...options,
  });
  map.attributionControl.setPrefix(false);

  // The view first: layers added to a map without one wait for it, and a shape whose renderer
  // is still waiting cannot be drawn.
  const regionBounds = new Map<string, L.LatLngBounds>();
  let allBounds: L.LatLngBounds | null = null;
  for (const region of data.regions) {
    const bounds = L.latLngBounds(regionPolygon(region) as L.LatLngTuple[]);
    regionBounds.set(region.id, bounds);
    allBounds = allBounds ? allBounds.extend(bounds) : L.latLngBounds(bounds.getSouthWest(), bounds.getNorthEast());
  }
  const fit = (region?: string): void => {
    const bounds = region ? regionBounds.get(region) : allBounds;
    if (bounds) map.fitBounds(bounds, { padding: [16, 16] });
    else map.setView([10, -80], 4);
  };
  fit();
  map.attributionControl.addAttribution("Outlines © Natural Earth (public domain, via world-atlas)");

  for (const [name, z] of [
    ["backdrop", 150],
    ["regions", 250],
    ["zones", 300],
    ["sensors", 350],
    ["trails", 420],
    ["teams", 600],
    ["alerts", 640],
    ["tracks", 650],
    ["labels", 660],
  ] as const) {
    map.createPane(name).style.zIndex = String(z);
  }
  map.getPane("backdrop")!.style.pointerEvents = "none";
  map.getPane("labels")!.style.pointerEvents = "none";

  if (data.tiles?.url) {
    L.tileLayer(data.tiles.url, {
      attribution: data.tiles.attribution ?? "",
      maxZoom: 19,
      crossOrigin: false,
    }).addTo(map);
    container.classList.add("with-tiles");
  }

  const backdrop = L.canvas({ pane: "backdrop", padding: 0.5 });
  void fetch("/geo/countries-50m.json")
    .then((response) => (response.ok ? response.json() : Promise.reject(new Error(String(response.status)))))
    .then((topology: Topology) => {
      const countries = topology.objects.countries as GeometryCollection;
      L.geoJSON(feature(topology, countries), {
        pane: "backdrop",
        renderer: backdrop,
        interactive: false,
        style: { stroke: false, fill: !data.tiles?.url, fillColor: "#e9e6dc", fillOpacity: 1 },
      } as GeoOptions).addTo(map);
      L.geoJSON(
        mesh(topology, countries, (a, b) => a !== b),
        {
          pane: "backdrop",
          renderer: backdrop,
          interactive: false,
          style: { color: "#8c8576", weight: 1, opacity: 0.8, dashArray: "4 3" },
        } as GeoOptions,
      ).addTo(map);
    })
    .catch((error: unknown) => {
      console.warn("world outlines not loaded:", error);
    });

  const regionStyle = L.svg({ pane: "regions" });
  L.geoJSON(data.geography, {
    pane: "regions",
    renderer: regionStyle,
    interactive: false,
    style: (item) => {
      const kind = item?.properties?.kind;
      if (kind === "border") return { color: "#b3261e", weight: 3, opacity: 0.9 };
      const region = data.regions.find((r) => r.id === item?.properties?.region);
      const index = region ? region.countries.indexOf(String(item?.properties?.code)) : 0;
      return {
        color: "#6f6a5c",
        weight: 1,
        fillColor: data.tiles?.url ? "#ffffff" : COUNTRY_FILLS[Math.max(0, index) % COUNTRY_FILLS.length],
        fillOpacity: data.tiles?.url ? 0.15 : 1,
      };
    },
  } as GeoOptions)
    .bindTooltip((layer) => {
      const props = (layer as L.Layer & { feature?: GeoJSON.Feature }).feature?.properties ?? {};
      return String(props.name ?? "");
    })
    .addTo(map);
  for (const region of data.regions) {
    L.polygon(regionPolygon(region), {
      pane: "regions",
      renderer: regionStyle,
      interactive: false,
      color: "#3d5a80",
      weight: 2,
      dashArray: "8 6",
      fill: false,
    }).addTo(map);
    const label = L.marker(regionBounds.get(region.id)!.getNorthWest(), {
      pane: "labels",
      interactive: false,
      keyboard: false,
      icon: L.divIcon({ className: "region-label", html: "", iconAnchor: [-4, -4] }),
    }).addTo(map);
    const element = label.getElement();
    if (element) element.textContent = region.name;
  }

  return { map, regionBounds, allBounds, fit };
}
