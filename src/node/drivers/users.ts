// Who a process task runs as: a spec's `user` ("name", "uid", "uid:gid", "name:group") resolved
// against the system's user and group databases as Docker resolves it in a container:
//   - a name must be in the passwd database ("unable to find user NAME: no matching entries in
//     passwd file"); a number need not be (then its group is 0);
//   - the group is the one given (a name must be in the group database, a number need not be),
//     else the user's primary group;
//   - without an explicit group, the user's supplementary groups are the groups that list it as
//     a member.
// The databases are read with `getent` (so NSS sources count), or from /etc/passwd and
// /etc/group where there is no getent.

import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { DriverError, DriverErrorCode } from "./driver.js";
import { findTool } from "./netns.js";

export interface TaskUser {
  /** The spec's words, for messages. */
  spec: string;
  uid: number;
  gid: number;
  /** Supplementary groups. */
  groups: number[];
  /** The passwd entry's home directory ("/" when the user is not in it). */
  home: string;
}

/** The lines of one database (`passwd`, `group`) that match a key, or all of them (key ""). */
export type DbLookup = (db: "passwd" | "group", key: string) => Promise<string[][]>;

const NUMERIC = /^\d+$/;

/** Resolves a spec's `user` (see the header). Rejects with DriverError ERR_USER. */
export async function resolveUser(
  spec: string,
  lookup: DbLookup = systemLookup(),
): Promise<TaskUser> {
  const colon = spec.indexOf(":");
  const userPart = colon < 0 ? spec : spec.slice(0, colon);
  const groupPart = colon < 0 ? "" : spec.slice(colon + 1);
  if (userPart === "" || (colon >= 0 && groupPart === "")) {
    throw new DriverError(
      DriverErrorCode.User,
      `invalid user "${spec}": expected name|uid[:group|gid]`,
    );
  }
  const pw = (await lookup("passwd", userPart)).find((f) =>
    NUMERIC.test(userPart) ? f[2] === userPart : f[0] === userPart,
  );
  let uid: number;
  let gid: number;
  let home = "/";
  if (pw) {
    uid = Number(pw[2]);
    gid = Number(pw[3]);
    home = pw[5] || "/";
  } else if (NUMERIC.test(userPart)) {
    uid = Number(userPart);
    gid = 0;
  } else {
    throw new DriverError(
      DriverErrorCode.User,
      `unable to find user ${userPart}: no matching entries in passwd file`,
    );
  }
  let groups: number[] = [];
  if (groupPart !== "") {
    const gr = (await lookup("group", groupPart)).find((f) =>
      NUMERIC.test(groupPart) ? f[2] === groupPart : f[0] === groupPart,
    );
    if (gr) gid = Number(gr[2]);
    else if (NUMERIC.test(groupPart)) gid = Number(groupPart);
    else {
      throw new DriverError(
        DriverErrorCode.User,
        `unable to find group ${groupPart}: no matching entries in group file`,
      );
    }
  } else if (pw) {
    const name = pw[0]!;
    groups = (await lookup("group", ""))
      .filter((f) => (f[3] ?? "").split(",").includes(name))
      .map((f) => Number(f[2]))
      .filter((g) => Number.isInteger(g) && g !== gid);
    groups = [...new Set(groups)];
  }
  return { spec, uid, gid, groups, home };
}

/** Splits a database's text into entries (fields), skipping comments and blank lines. */
export function parseDb(text: string): string[][] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "" && !l.startsWith("#"))
    .map((l) => l.split(":"));
}

/** The system's databases: `getent DB [KEY]`, or the files where there is no getent. */
export function systemLookup(getent = findTool("getent")): DbLookup {
  return async (db, key) => {
    if (getent === "") return parseDb(await readFile(`/etc/${db}`, "utf8").catch(() => ""));
    return new Promise((resolve, reject) => {
      execFile(getent, key === "" ? [db] : [db, key], { timeout: 10_000 }, (err, stdout) => {
        // getent exits 2 when the key is not found.
        if (err && (err as { code?: unknown }).code === 2) resolve([]);
        else if (err) reject(new Error(`getent ${db} ${key}: ${err.message}`));
        else resolve(parseDb(stdout));
      });
    });
  };
}
