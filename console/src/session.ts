// The signed-in key lives in this tab's sessionStorage only: gone when the tab closes, never in
// localStorage, a cookie or a URL. It is sent as the bearer header and nowhere else.
import { createApi, type Api, type Me, type Scope } from "./api.ts";

const STORAGE_KEY = "gateway-console.api-key";

export interface Session {
  api: Api;
  me: Me;
  can(scope: Scope): boolean;
}

export function storedKey(): string | null {
  return sessionStorage.getItem(STORAGE_KEY);
}

/// Asks the gateway who `key` is; keeps the key only when it answers.
export async function signIn(key: string): Promise<Session> {
  const api = createApi(key);
  const me = await api.me();
  sessionStorage.setItem(STORAGE_KEY, key);
  return session(api, me);
}

export function signOut(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}

function session(api: Api, me: Me): Session {
  return { api, me, can: (scope) => me.scopes.includes(scope) };
}
