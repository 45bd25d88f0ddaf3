import { DrayError } from "@dray/common";
import type { FinishEntityRequest, FinishEntityResult } from "../../connector.js";
import type { Session } from "./session.js";

/** Moves an entity's sequences and validates references once it is loaded (to be written). */
export async function finishEntity(_session: Session, _request: FinishEntityRequest): Promise<FinishEntityResult> {
  throw new DrayError("unimplemented", "finishEntity is not implemented yet");
}
