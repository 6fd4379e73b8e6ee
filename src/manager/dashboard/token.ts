// The dashboard's login token, kept in the store's metadata next to the cluster's other secrets
// (the store is the manager's, 0600 on disk) so that every manager of the cluster serves the
// same one. Made at first use; `rotate` replaces it (every open session ends).

import type { Store } from "../../store/store.js";
import { newSecret } from "../ids.js";

const META_KEY = "dashboard";

interface DashboardMeta {
  token: string;
}

/** The token now, made when there is none yet (or replaced with `rotate`). */
export async function dashboardToken(store: Store, rotate = false): Promise<string> {
  const cur = store.view((tx) => tx.getMeta<DashboardMeta>(META_KEY));
  if (cur && !rotate) return cur.token;
  return store.update((tx) => {
    const again = tx.getMeta<DashboardMeta>(META_KEY);
    if (again && !rotate) return again.token;
    const token = `shoal-dash-${newSecret()}${newSecret()}`;
    tx.putMeta(META_KEY, { token });
    return token;
  });
}

/** The token if one was made (a read, for each request). */
export function currentToken(store: Store): string | undefined {
  return store.view((tx) => tx.getMeta<DashboardMeta>(META_KEY))?.token;
}
