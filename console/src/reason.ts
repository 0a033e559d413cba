// Every action asks for a reason first; the gateway records it with the key's name in the
// user's audit trail.
import { byId, replace } from "./dom.ts";
import { GatewayProblem } from "./api.ts";

/// Opens the reason dialog; `run` gets the reason and may throw a Problem, shown in the dialog
/// (the dialog stays open so the operator can correct the reason). Resolves once `run` succeeded,
/// or with null when cancelled.
export function withReason<T>(title: string, detail: string, run: (reason: string) => Promise<T>): Promise<T | null> {
  const dialog = byId<HTMLDialogElement>("reason-dialog");
  const text = byId<HTMLTextAreaElement>("reason-text");
  const error = byId("reason-error");
  const confirm = byId<HTMLButtonElement>("reason-confirm");
  const cancel = byId<HTMLButtonElement>("reason-cancel");
  replace(byId("reason-title"), title);
  replace(byId("reason-detail"), detail);
  replace(error);
  text.value = "";
  return new Promise((resolve) => {
    const finish = (value: T | null) => {
      confirm.onclick = null;
      cancel.onclick = null;
      dialog.oncancel = null;
      dialog.close();
      resolve(value);
    };
    cancel.onclick = () => finish(null);
    dialog.oncancel = () => finish(null);
    confirm.onclick = async () => {
      replace(error);
      const reason = text.value.trim();
      if (reason.length === 0) {
        replace(error, "A reason is required.");
        return;
      }
      confirm.disabled = true;
      try {
        finish(await run(reason));
      } catch (problem) {
        replace(error, describe(problem));
      } finally {
        confirm.disabled = false;
      }
    };
    dialog.showModal();
    text.focus();
  });
}

/// A failure as an operator should read it: 401 and 403 named as such, field errors listed.
export function describe(problem: unknown): string {
  if (!(problem instanceof GatewayProblem)) return `The gateway did not answer: ${String(problem)}`;
  // The client's message already reads "<status> <code>: <detail>"; 401 and 403 get a plain word.
  const prefix =
    problem.status === 401
      ? "401 Unauthorized (the gateway does not know this key) — "
      : problem.status === 403
        ? "403 Forbidden (this key's scopes do not allow it) — "
        : "";
  const fields = problem.errors.map((e) => `${e.field}: ${e.message}`).join("; ");
  const id = problem.requestId ? ` (request ${problem.requestId})` : "";
  return `${prefix}${problem.message}${fields ? ` [${fields}]` : ""}${id}`;
}
