// The Consul-compatible catalog's contract (src/manager/consul/): what it stores (KV entries and
// the services registered through `/v1/agent/service/register`, in shoal's words) and the JSON it
// speaks, in Consul's field names, so Consul's clients (consul-template, Prometheus'
// consul_sd_configs, Traefik's consulcatalog provider, the `consul` npm client) read it unchanged.
//
// Stored objects accept properties they do not know (as every stored object); the register body
// does too, as Consul's agent does (Check, Checks, EnableTagOverride... are accepted, not used).

import { Type, type Static } from "@sinclair/typebox";

/** The largest KV value, as Consul's default `kv_max_value_size` (512 KiB). */
export const KV_MAX_VALUE_SIZE = 512 * 1024;

const index = (description: string) => Type.Integer({ minimum: 0, description });

// ---- stored --------------------------------------------------------------------------------------

export const KvEntrySchema = Type.Object(
  {
    key: Type.String({ minLength: 1, description: "The key (any text; `/` separates folders)." }),
    value: Type.String({ description: "The value's bytes, base64." }),
    flags: Type.Integer({ minimum: 0, description: "An opaque number the client sets (?flags)." }),
    createIndex: index("The store revision that created the key."),
    modifyIndex: index("The store revision that last wrote it (what ?cas compares)."),
    lockIndex: index("Always 0: sessions and locks are not supported."),
  },
  { title: "KvEntry" },
);
export type KvEntry = Static<typeof KvEntrySchema>;

/** A service registered through `/v1/agent/service/register` (one that runs outside shoal). */
export const ExternalServiceSchema = Type.Object(
  {
    id: Type.String({ minLength: 1 }),
    name: Type.String({ minLength: 1 }),
    tags: Type.Array(Type.String()),
    address: Type.String({ description: "Empty: the node's address." }),
    port: Type.Integer({ minimum: 0, maximum: 65535 }),
    meta: Type.Record(Type.String(), Type.String()),
    nodeId: Type.String({ description: "The manager node that took the registration." }),
    createIndex: index("The store revision that registered it."),
  },
  { title: "ExternalService" },
);
export type ExternalService = Static<typeof ExternalServiceSchema>;

/** The meta key that holds the registered services (id → ExternalService). */
export const EXTERNAL_SERVICES_META = "consul.services";

// ---- bodies (Consul's field names) ---------------------------------------------------------------

export const AgentServiceRegisterSchema = Type.Object(
  {
    ID: Type.Optional(Type.String({ description: "Defaults to Name." })),
    Name: Type.String({ description: "The service's name." }),
    Tags: Type.Optional(Type.Union([Type.Array(Type.String()), Type.Null()])),
    Address: Type.Optional(Type.String({ description: "Empty: the agent node's address." })),
    Port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    Meta: Type.Optional(Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()])),
  },
  { title: "AgentServiceRegister" },
);
export type AgentServiceRegister = Static<typeof AgentServiceRegisterSchema>;

// ---- answers (Consul's field names) --------------------------------------------------------------

export const KvPairSchema = Type.Object(
  {
    LockIndex: Type.Integer(),
    Key: Type.String(),
    Flags: Type.Integer(),
    Value: Type.Union([Type.String(), Type.Null()], { description: "base64; null when empty." }),
    CreateIndex: Type.Integer(),
    ModifyIndex: Type.Integer(),
  },
  { title: "KvPair" },
);
export type KvPair = Static<typeof KvPairSchema>;

export const CatalogNodeSchema = Type.Object(
  {
    ID: Type.String(),
    Node: Type.String(),
    Address: Type.String(),
    Datacenter: Type.String(),
    TaggedAddresses: Type.Record(Type.String(), Type.String()),
    Meta: Type.Record(Type.String(), Type.String()),
    CreateIndex: Type.Integer(),
    ModifyIndex: Type.Integer(),
  },
  { title: "CatalogNode" },
);
export type CatalogNode = Static<typeof CatalogNodeSchema>;

const Weights = Type.Object({ Passing: Type.Integer(), Warning: Type.Integer() });

export const AgentServiceSchema = Type.Object(
  {
    ID: Type.String(),
    Service: Type.String(),
    Tags: Type.Array(Type.String()),
    Address: Type.String(),
    Meta: Type.Record(Type.String(), Type.String()),
    Port: Type.Integer(),
    Weights,
    EnableTagOverride: Type.Boolean(),
    CreateIndex: Type.Integer(),
    ModifyIndex: Type.Integer(),
  },
  { title: "AgentService" },
);
export type AgentService = Static<typeof AgentServiceSchema>;

export const CatalogServiceSchema = Type.Object(
  {
    ID: Type.String(),
    Node: Type.String(),
    Address: Type.String(),
    Datacenter: Type.String(),
    TaggedAddresses: Type.Record(Type.String(), Type.String()),
    NodeMeta: Type.Record(Type.String(), Type.String()),
    ServiceID: Type.String(),
    ServiceName: Type.String(),
    ServiceAddress: Type.String(),
    ServicePort: Type.Integer(),
    ServiceTags: Type.Array(Type.String()),
    ServiceMeta: Type.Record(Type.String(), Type.String()),
    ServiceWeights: Weights,
    ServiceEnableTagOverride: Type.Boolean(),
    CreateIndex: Type.Integer(),
    ModifyIndex: Type.Integer(),
  },
  { title: "CatalogService" },
);
export type CatalogService = Static<typeof CatalogServiceSchema>;

export const CheckStatusSchema = Type.Union(
  [Type.Literal("passing"), Type.Literal("warning"), Type.Literal("critical")],
  { title: "CheckStatus" },
);
export type CheckStatus = Static<typeof CheckStatusSchema>;

export const HealthCheckSchema = Type.Object(
  {
    Node: Type.String(),
    CheckID: Type.String(),
    Name: Type.String(),
    Status: CheckStatusSchema,
    Notes: Type.String(),
    Output: Type.String(),
    ServiceID: Type.String(),
    ServiceName: Type.String(),
    ServiceTags: Type.Array(Type.String()),
    Type: Type.String(),
    CreateIndex: Type.Integer(),
    ModifyIndex: Type.Integer(),
  },
  { title: "HealthCheck" },
);
export type HealthCheck = Static<typeof HealthCheckSchema>;

export const ServiceEntrySchema = Type.Object(
  {
    Node: CatalogNodeSchema,
    Service: AgentServiceSchema,
    Checks: Type.Array(HealthCheckSchema),
  },
  { title: "ServiceEntry" },
);
export type ServiceEntry = Static<typeof ServiceEntrySchema>;
