import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DrayError } from "@dray/common";

/** What the agent keeps after enrolment. The credential is a secret: the file is mode 0600. */
export interface StoredCredential {
  agentId: string;
  environmentId: string;
  credential: string;
  controlPlaneAddress: string;
  enrolledAt: string;
}

const FILE = "credential.json";

/** Reads and writes the agent's credential in its state directory. */
export function createCredentialStore(stateDir: string) {
  const path = join(stateDir, FILE);
  return {
    path,
    /** The stored credential, or undefined before the first enrolment. */
    async load(): Promise<StoredCredential | undefined> {
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw new DrayError(
          "failed_precondition",
          `cannot read the agent credential at ${path}: ${String(error)}`,
        );
      }
      try {
        const value = JSON.parse(text) as StoredCredential;
        if (typeof value.agentId !== "string" || typeof value.credential !== "string")
          throw new Error("missing fields");
        return value;
      } catch (error) {
        throw new DrayError(
          "failed_precondition",
          `the agent credential at ${path} is corrupt (${String(error)}): delete it and enroll again with DRAY_ENROLLMENT_TOKEN`,
        );
      }
    },
    /** Writes atomically (temp file + rename) with owner-only permissions. */
    async save(value: StoredCredential): Promise<void> {
      await mkdir(stateDir, { recursive: true, mode: 0o700 });
      const tmp = `${path}.${process.pid}.tmp`;
      await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
      await chmod(tmp, 0o600);
      await rename(tmp, path);
    },
  };
}

export type CredentialStore = ReturnType<typeof createCredentialStore>;
