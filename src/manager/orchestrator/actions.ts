// The reconciler's actions and their one meaning: `applyAction` is how an action changes the task
// set, used by the reconciler's working copy (`Plan`), by `applyActions` (tests iterate to a
// fixed point with it) and by the manager's store writer (through a TaskSet over its transaction). A Plan records an action
// only when it changes something, so a converged state produces no actions at all.

import type { DesiredState, Task, TaskState } from "../../api/types.js";

export type Action =
  /** A new task: state "new"; nodeId "" for replicated services, the node's id for global. */
  | { type: "create"; task: Task }
  | { type: "setDesired"; taskId: string; desired: DesiredState; reason: string }
  /** The manager's own verdict on a task no agent will report on (its node is down, it never started). */
  | { type: "setStatus"; taskId: string; state: TaskState; message: string; err?: string }
  | { type: "delete"; taskId: string; reason: string };

/** Where an action is applied: a Map in the reconciler, a store transaction in the manager. */
export interface TaskSet {
  get(id: string): Task | undefined;
  put(t: Task): void;
  remove(id: string): void;
}

export function mapTaskSet(tasks: Map<string, Task>): TaskSet {
  return {
    get: (id) => tasks.get(id),
    put: (t) => void tasks.set(t.id, t),
    remove: (id) => void tasks.delete(id),
  };
}

export function applyAction(tasks: TaskSet, a: Action, now: number): void {
  if (a.type === "create") {
    tasks.put({ ...a.task, createdAt: now, updatedAt: now });
    return;
  }
  const t = tasks.get(a.taskId);
  if (!t) return;
  switch (a.type) {
    case "setDesired":
      if (t.desiredState !== a.desired)
        tasks.put({ ...t, desiredState: a.desired, updatedAt: now });
      return;
    case "setStatus":
      tasks.put({
        ...t,
        status: {
          ...t.status,
          state: a.state,
          message: a.message,
          err: a.err ?? t.status.err,
          timestamp: now,
        },
        updatedAt: now,
      });
      return;
    case "delete":
      tasks.remove(t.id);
      return;
  }
}

/** The task set after the actions (pure: the input is not modified). */
export function applyActions(
  input: { tasks: readonly Task[] },
  actions: readonly Action[],
  now: number,
): Task[] {
  const tasks = new Map(input.tasks.map((t) => [t.id, t]));
  const set = mapTaskSet(tasks);
  for (const a of actions) applyAction(set, a, now);
  return [...tasks.values()];
}

/**
 * The reconciler's working copy: rules read the tasks as earlier rules left them, and every
 * change is both applied here and recorded as an action. No-op changes are not recorded.
 */
export class Plan {
  readonly actions: Action[] = [];
  private readonly tasks: Map<string, Task>;

  constructor(
    tasks: readonly Task[],
    readonly now: number,
  ) {
    this.tasks = new Map(tasks.map((t) => [t.id, t]));
  }

  get(id: string): Task | undefined {
    return this.tasks.get(id);
  }

  all(): Task[] {
    return [...this.tasks.values()];
  }

  private record(a: Action): void {
    this.actions.push(a);
    applyAction(mapTaskSet(this.tasks), a, this.now);
  }

  create(task: Task): void {
    this.record({ type: "create", task });
  }

  setDesired(t: Task, desired: DesiredState, reason: string): void {
    const cur = this.tasks.get(t.id);
    if (!cur || cur.desiredState === desired) return;
    this.record({ type: "setDesired", taskId: t.id, desired, reason });
  }

  setStatus(t: Task, state: TaskState, message: string, err?: string): void {
    const cur = this.tasks.get(t.id);
    if (!cur) return;
    const s = cur.status;
    if (s.state === state && s.message === message && (err === undefined || s.err === err)) return;
    this.record(
      err === undefined
        ? { type: "setStatus", taskId: t.id, state, message }
        : { type: "setStatus", taskId: t.id, state, message, err },
    );
  }

  delete(t: Task, reason: string): void {
    if (!this.tasks.has(t.id)) return;
    this.record({ type: "delete", taskId: t.id, reason });
  }
}
