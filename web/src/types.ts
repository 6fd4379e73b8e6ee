// The shapes the dashboard server sends (their schemas: src/api/dashboard.ts).

export interface DashNode {
  id: string;
  hostname: string;
  role: "manager" | "worker";
  availability: "active" | "pause" | "drain";
  status: "ready" | "down" | "unknown";
  addr: string;
  nanoCpus: number;
  memoryBytes: number;
  engineVersion: string;
  labels: Record<string, string>;
}

export interface PortConfig {
  published: number;
  target: number;
  protocol: "tcp" | "udp";
  mode: "ingress" | "host";
}

export interface UpdateStatus {
  state: string;
  version: number;
  startedAt: number;
  completedAt: number | null;
  message: string;
}

export interface DashService {
  id: string;
  name: string;
  mode: "replicated" | "global";
  desired: number;
  running: number;
  ports: PortConfig[];
  image: string;
  version: number;
  updateStatus: UpdateStatus | null;
  canRollback: boolean;
  autoscale?: unknown;
  /** The autoscaler's last decision. */
  autoscaleStatus?: { reason: string; current: number; desired: number; lastDecisionAt: number };
  /** Its decisions over the last hour, oldest first. */
  autoscaleHistory?: AutoscalePoint[];
}

export interface AutoscalePoint {
  at: number;
  replicas: number;
  value: number | null;
}

export interface DashTask {
  id: string;
  serviceId: string;
  serviceName: string;
  slot: number;
  nodeId: string;
  state: string;
  desiredState: string;
  health?: "starting" | "healthy" | "unhealthy";
  message: string;
  err: string;
  timestamp: number;
}

export interface DashState {
  revision: number;
  nodes: DashNode[];
  services: DashService[];
  tasks: DashTask[];
}

/** One cluster event, as `docker events --format json` prints one. */
export interface DashEvent {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  time: number;
  timeNano: number;
  seq: number;
}
