// MIL-STD-2525 symbols (milsymbol) for tracks and teams.
//
// Symbol identification codes are the numeric 2525D/E form, 20 digits:
//   version 10 | context 0 (reality) | standard identity | symbol set | status | HQ 0 | amplifier 00
//   | entity (6 digits) | modifiers 0000
// Standard identity: 1 unknown (a track nobody has judged), 5 suspect (a track an open alert names),
// 3 friend (our teams). Status: 0 present (a confirmed track), 1 anticipated, drawn with a dashed
// frame (tentative or coasting: the position is uncertain or predicted).

import ms from "milsymbol";
import type { TargetClass, TrackStatus } from "./types";

ms.setStandard("2525");

const CLASS_CODE: Record<TargetClass, { set: string; entity: string; label: string }> = {
  person: { set: "27", entity: "000000", label: "person (dismounted individual)" },
  vehicle: { set: "15", entity: "160100", label: "vehicle (civilian automobile)" },
  aircraft: { set: "01", entity: "120300", label: "aircraft (civilian unmanned aerial vehicle)" },
  vessel: { set: "30", entity: "140000", label: "vessel (civilian surface)" },
  animal: { set: "10", entity: "000000", label: "animal (land, unspecified)" },
  unknown: { set: "10", entity: "000000", label: "unknown (land, unspecified)" },
};

export function trackSidc(targetClass: TargetClass, status: TrackStatus, suspect: boolean): string {
  const code = CLASS_CODE[targetClass] ?? CLASS_CODE.unknown;
  const identity = suspect ? "5" : "1";
  const state = status === "confirmed" ? "0" : "1";
  return `100${identity}${code.set}${state}000${code.entity}0000`;
}

export function classLabel(targetClass: TargetClass): string {
  return (CLASS_CODE[targetClass] ?? CLASS_CODE.unknown).label;
}

/** A friendly land unit: infantry for teams on foot, motorised (wheeled) otherwise. */
export function teamSidc(capabilities: string[]): string {
  const motorised = capabilities.includes("vehicle") && !capabilities.includes("foot");
  return `10031000001211${motorised ? "02" : "00"}0000`;
}

export interface SymbolIcon {
  svg: string;
  width: number;
  height: number;
  anchorX: number;
  anchorY: number;
}

const cache = new Map<string, SymbolIcon>();

export function symbol(sidc: string, size = 22, options: Record<string, unknown> = {}): SymbolIcon {
  const key = `${sidc}|${size}|${JSON.stringify(options)}`;
  let icon = cache.get(key);
  if (!icon) {
    const made = new ms.Symbol(sidc, { size, outlineWidth: 3, outlineColor: "rgba(255,255,255,0.85)", ...options });
    const { width, height } = made.getSize();
    const anchor = made.getAnchor();
    icon = { svg: made.asSVG(), width, height, anchorX: anchor.x, anchorY: anchor.y };
    cache.set(key, icon);
  }
  return icon;
}
