# ---------------------------------------------------------------------------
# Placement.

variable "name" {
  description = "Prefix of every resource's name, and the Name tag's stem."
  type        = string
  default     = "strata"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,23}$", var.name))
    error_message = "name must be 1-24 lower-case letters, digits and '-', starting with a letter (it prefixes bucket and IAM names)."
  }
}

variable "subnet_ids" {
  description = "Private subnets of one VPC, ideally one per availability zone: name servers, brokers and readers are spread over them in order."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0 && alltrue([for s in var.subnet_ids : startswith(s, "subnet-")])
    error_message = "subnet_ids must list at least one subnet id (subnet-…)."
  }
}

variable "client_cidrs" {
  description = "CIDR blocks allowed to reach the client ports (name servers' namesrv_port, brokers' broker_port). null: the VPC's own CIDR block."
  type        = list(string)
  default     = null

  validation {
    condition     = var.client_cidrs == null || alltrue([for c in coalesce(var.client_cidrs, []) : can(cidrhost(c, 0))])
    error_message = "client_cidrs must be CIDR blocks such as \"10.0.0.0/16\"."
  }
}

variable "admin_cidrs" {
  description = "CIDR blocks allowed to reach http_port (/metrics, /healthz, the admin API, pprof), e.g. your Prometheus hosts. Empty (the default): the port is closed and bound to 127.0.0.1."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0))])
    error_message = "admin_cidrs must be CIDR blocks such as \"10.0.5.0/24\"."
  }
  validation {
    condition     = alltrue([for c in var.admin_cidrs : !endswith(c, "/0")])
    error_message = "admin_cidrs must never open the admin and metrics port to the whole internet (0.0.0.0/0 or ::/0): list your monitoring and operator networks."
  }
}

variable "namesrv_port" {
  description = "Name-server port."
  type        = number
  default     = 9876
}

variable "broker_port" {
  description = "Broker and tier-reader client port."
  type        = number
  default     = 10911
}

variable "http_port" {
  description = "Port of /metrics, /healthz and the admin API."
  type        = number
  default     = 8080
}

variable "ha_port" {
  description = "Replication port of leaders and followers (Strata's --ha-listen), open only between the cluster's brokers; null: broker_port + 1 (10912), Strata's default."
  type        = number
  default     = null

  validation {
    condition     = var.ha_port == null || try(var.ha_port == floor(var.ha_port) && var.ha_port >= 1 && var.ha_port <= 65535 && var.ha_port != var.broker_port && var.ha_port != var.http_port, false)
    error_message = "ha_port must be a port from 1 to 65535 other than broker_port and http_port, or null (broker_port + 1)."
  }
}

variable "controller_port" {
  description = "Raft port of the failover controller the name servers run with failover = true (Strata's --controller-listen), open only between the name servers."
  type        = number
  default     = 9878

  validation {
    condition     = var.controller_port == floor(var.controller_port) && var.controller_port >= 1 && var.controller_port <= 65535 && var.controller_port != var.namesrv_port && var.controller_port != var.http_port
    error_message = "controller_port must be a port from 1 to 65535 other than namesrv_port and http_port."
  }
}

# ---------------------------------------------------------------------------
# Machines.

variable "architecture" {
  description = "CPU architecture of every node, \"x86_64\" or \"arm64\": picks the Amazon Linux 2023 image, default instance types, and must match binary_url."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be \"x86_64\" or \"arm64\"."
  }
}

variable "ami_id" {
  description = "Image of every node; null: the latest Amazon Linux 2023 for the architecture (resolved once: later images do not replace running nodes)."
  type        = string
  default     = null
}

variable "binary_url" {
  description = "https URL of the static strata binary for the architecture (scripts/release.sh builds dist/strata-linux-amd64 and -arm64; publish one, e.g. as a release asset). \"\" only with an ami_id that has strata at /usr/local/bin/strata."
  type        = string
  default     = ""

  validation {
    condition     = var.binary_url != "" || var.ami_id != null
    error_message = "Set binary_url (with binary_sha256), or an ami_id with strata installed at /usr/local/bin/strata."
  }
}

variable "binary_sha256" {
  description = "SHA-256 of the binary at binary_url (dist/SHA256SUMS)."
  type        = string
  default     = ""
}

variable "namesrv_count" {
  description = "Name servers, spread over subnet_ids. Each keeps a fixed private address (its own network interface), so clients' name-server lists survive instance replacement."
  type        = number
  default     = 3

  validation {
    condition     = var.namesrv_count >= 1 && var.namesrv_count == floor(var.namesrv_count)
    error_message = "namesrv_count must be a whole number of at least 1."
  }
}

variable "namesrv_instance_type" {
  description = "Name-server instance type; null: t3.small (x86_64) or t4g.small (arm64)."
  type        = string
  default     = null
}

variable "broker_count" {
  description = "Broker groups (broker-a, broker-b, …), each a leader and followers_per_group followers, spread over subnet_ids. Each is its own shard of every topic's queues."
  type        = number
  default     = 2

  validation {
    condition     = var.broker_count >= 1 && var.broker_count <= 26 && var.broker_count == floor(var.broker_count)
    error_message = "broker_count must be a whole number from 1 to 26."
  }
}

variable "broker_instance_type" {
  description = "Instance type of leaders and followers; it must have local NVMe instance storage (the hot tier). null: i4i.large (x86_64) or i4g.large (arm64)."
  type        = string
  default     = null
}

variable "broker_data_device" {
  description = "Device (or glob) of the leaders' and followers' instance store, formatted when blank and mounted at /var/lib/strata at every boot."
  type        = string
  default     = "/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_*"
}

variable "broker_data_fs_type" {
  description = "Filesystem of the leaders' and followers' instance store: \"xfs\" or \"ext4\"."
  type        = string
  default     = "xfs"
}

variable "followers_per_group" {
  description = "Followers per broker group (broker ids 1, 2, …), each on its own instance of broker_instance_type with its own instance store, in the subnets after its leader's (so in other availability zones). They copy the leader's log over ha_port and serve pulls; 0 (the default): leaders alone."
  type        = number
  default     = 0

  validation {
    condition     = var.followers_per_group >= 0 && var.followers_per_group <= 8 && var.followers_per_group == floor(var.followers_per_group)
    error_message = "followers_per_group must be a whole number from 0 to 8."
  }
}

variable "readers_per_broker" {
  description = "Tier readers per broker, each broker's in an auto-scaling group of this fixed size (0: none). Readers serve the broker's offloaded history straight from S3; their ids come from their addresses."
  type        = number
  default     = 0

  validation {
    condition     = var.readers_per_broker >= 0 && var.readers_per_broker == floor(var.readers_per_broker)
    error_message = "readers_per_broker must be a whole number, 0 or more."
  }
  validation {
    condition     = var.readers_per_broker == 0 || !var.failover
    error_message = "Tier readers are not supported in failover groups yet (their routing under a changing leader is not tested); the brokers do offload to S3 with failover = true: set readers_per_broker = 0."
  }
}

variable "reader_instance_type" {
  description = "Tier-reader instance type (memory for cold-block caches matters more than disk); null: m6i.large (x86_64) or m7g.large (arm64)."
  type        = string
  default     = null
}

variable "root_volume_size" {
  description = "Encrypted gp3 root volume of name servers and brokers, GiB."
  type        = number
  default     = 20
}

variable "key_name" {
  description = "EC2 key pair for SSH; null (the default) for none: use SSM Session Manager (enable_ssm)."
  type        = string
  default     = null
}

variable "enable_ssm" {
  description = "Attach AmazonSSMManagedInstanceCore to the instance role, for Session Manager shells instead of SSH."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------
# The cold tier.

variable "bucket_name" {
  description = "Name of the S3 bucket created for the cold tier; null: a unique name starting with \"<name>-tier-\"."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", coalesce(var.bucket_name, "xxx")))
    error_message = "bucket_name must be 3-63 lower-case letters, digits, '.' and '-'."
  }
}

variable "tier_prefix" {
  description = "Key prefix of the cluster in the bucket; the instance role may touch nothing else."
  type        = string
  default     = "strata"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.tier_prefix))
    error_message = "tier_prefix must be non-empty slash-separated segments of letters, digits, '_', '.' and '-'."
  }
}

variable "tier_transition_days" {
  description = "Move segment objects to tier_transition_storage_class this many days after upload (manifests stay in STANDARD); null: never."
  type        = number
  default     = 30

  validation {
    condition     = var.tier_transition_days == null || try(var.tier_transition_days >= 1, false)
    error_message = "tier_transition_days must be 1 or more, or null."
  }
}

variable "tier_transition_storage_class" {
  description = "Storage class for older segments. Only classes that stay readable without a restore: STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR."
  type        = string
  default     = "STANDARD_IA"

  validation {
    condition     = contains(["STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"], var.tier_transition_storage_class)
    error_message = "tier_transition_storage_class must be STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING or GLACIER_IR: Strata reads cold segments directly, so GLACIER and DEEP_ARCHIVE (which need a restore) would make them unreadable."
  }
  validation {
    condition     = !contains(["STANDARD_IA", "ONEZONE_IA"], var.tier_transition_storage_class) || var.tier_transition_days == null || try(var.tier_transition_days >= 30, false)
    error_message = "S3 moves objects to STANDARD_IA or ONEZONE_IA only 30 days or more after they are written: set tier_transition_days to 30 or more."
  }
}

variable "tier_expiration_days" {
  description = "Delete segment objects this many days after upload; null (the default): keep every offset readable forever. Strata does not know about the deletion: reads of expired offsets fail. Use it only for data you must not keep."
  type        = number
  default     = null

  validation {
    condition     = var.tier_expiration_days == null || try(var.tier_expiration_days >= 1, false)
    error_message = "tier_expiration_days must be 1 or more, or null."
  }
  validation {
    condition     = var.tier_expiration_days == null || var.tier_transition_days == null || try(var.tier_expiration_days > var.tier_transition_days, false)
    error_message = "tier_expiration_days must come after tier_transition_days."
  }
}

variable "kms_key_arn" {
  description = "KMS key for the bucket's default encryption (SSE-KMS, with a bucket key); null: SSE-S3 (AES256). The instance role gets Decrypt and GenerateDataKey on it."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket with the cluster's history in it."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# Strata settings (see terraform/modules/strata-node).

variable "cluster_name" {
  description = "Cluster name the brokers register under."
  type        = string
  default     = "DefaultCluster"
}

variable "auto_create_topics" {
  description = "Create topics on their first send. On by default: without acl_file, topic administration (`strata admin topic create`) is accepted from a broker's loopback only, which a multi-host cluster's brokers never see. With acl_file, an admin account administers topics from anywhere (signed requests: STRATA_ACCESS_KEY/STRATA_SECRET_KEY), so you may turn it off."
  type        = bool
  default     = true
}

variable "segment_size" {
  description = "Commit-log segment size (the same on a group's leader and followers)."
  type        = string
  default     = "1GiB"
}

variable "segment_max_age" {
  description = "Seal and offload the active segment after this long even if not full: the most a broker's loss can take with it."
  type        = string
  default     = "10m"
}

variable "hot_retention" {
  description = "How much offloaded history also stays on each leader's and follower's instance store (\"80%\" of it, \"100GiB\", \"24h\", \"0\"); a follower deletes a segment only once its leader offloaded it."
  type        = string
  default     = "80%"
}

variable "flush" {
  description = "\"sync\" (acknowledge after fdatasync) or \"async\"."
  type        = string
  default     = "sync"
}

variable "replication" {
  description = "When a group's leader acknowledges a send: \"async\" (the default) after its own write, \"sync\" once min_insync_replicas copies, its own included, hold it."
  type        = string
  default     = "async"

  validation {
    condition     = contains(["async", "sync"], var.replication)
    error_message = "replication must be \"async\" or \"sync\"."
  }
}

variable "min_insync_replicas" {
  description = "With replication = \"sync\": copies, the leader's included, a send needs (with fewer in sync, sends fail at once); at most 1 + followers_per_group. null: Strata's default, 2 under sync."
  type        = number
  default     = null

  validation {
    condition     = var.min_insync_replicas == null || try(var.min_insync_replicas == floor(var.min_insync_replicas) && var.min_insync_replicas >= 1 && var.min_insync_replicas <= 1 + var.followers_per_group, false)
    error_message = "min_insync_replicas must be a whole number from 1 to 1 + followers_per_group (a group holds no more copies than that), or null."
  }
  validation {
    condition     = var.min_insync_replicas == null || var.replication == "sync" || try(var.min_insync_replicas <= 1, false)
    error_message = "min_insync_replicas above 1 needs replication = \"sync\"."
  }
  validation {
    condition     = var.replication != "sync" || var.min_insync_replicas != null || var.followers_per_group >= 1
    error_message = "replication = \"sync\" waits for 2 copies by default, and a group without followers holds only one: set followers_per_group, or min_insync_replicas = 1."
  }
}

variable "failover" {
  description = "Let the name servers' failover controller (a raft group on controller_port) elect each group's leader among its members when the leader fails. Needs followers_per_group >= 1. Every member keeps the S3 cold tier (only the current leader offloads). Tier readers are not supported in failover groups yet: readers_per_broker must be 0."
  type        = bool
  default     = false

  validation {
    condition     = !var.failover || var.followers_per_group >= 1
    error_message = "failover = true needs followers_per_group of 1 or more: the controller elects a new leader among the group's followers."
  }
}

variable "cache_size" {
  description = "Memory for decompressed cold blocks per broker and reader."
  type        = string
  default     = "512MiB"
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------
# Security (see terraform/modules/strata-node, "Security"): paths on the
# nodes, passed to every node. Terraform creates no certificate, key or
# account here: put the files on the nodes yourself (an image with them, or
# an agent in the image that fetches them at boot).

variable "acl_file" {
  description = "Path on every node of the accounts file (Strata's --acl-file): every request must then be signed, brokers sign theirs with its first admin account (or STRATA_ACCESS_KEY/STRATA_SECRET_KEY from credentials_env_file). It holds secret keys: Terraform never writes it; the image (ami_id) or a boot-time agent of yours puts it there, readable by the strata user. null: authentication off."
  type        = string
  default     = null
}

variable "require_auth" {
  description = "Nodes refuse to start without the ACL file (Strata's --require-auth). Needs acl_file."
  type        = bool
  default     = false

  validation {
    condition     = !var.require_auth || var.acl_file != null
    error_message = "require_auth needs acl_file: Strata refuses to start with --require-auth and no --acl-file."
  }
}

variable "tls_cert_file" {
  description = "Path on every node of its PEM certificate chain (Strata's --tls-cert): client, name-server and replication ports take TLS only. Peers and clients verify it against the address they dial, so each node's certificate must name its private IP address (name servers: their fixed addresses, namesrv_private_ips; brokers, followers and readers: the address they boot with): issue it at boot. Needs tls_key_file. null: no TLS."
  type        = string
  default     = null

  validation {
    condition     = (var.tls_cert_file == null) == (var.tls_key_file == null)
    error_message = "tls_cert_file and tls_key_file go together: set both (TLS on) or neither."
  }
}

variable "tls_key_file" {
  description = "Path on every node of the private key of tls_cert_file (Strata's --tls-key). A secret: Terraform never writes it."
  type        = string
  default     = null
}

variable "tls_ca_file" {
  description = "Path on every node of the PEM CA certificates (Strata's --tls-ca) that nodes verify each other (and, with tls_client_auth, clients) with; null: the system's roots. Only with TLS on; required with TLS and failover (the controller's raft port uses mutual TLS)."
  type        = string
  default     = null

  validation {
    condition     = var.tls_ca_file == null || var.tls_cert_file != null
    error_message = "tls_ca_file is used only with TLS on: set tls_cert_file and tls_key_file too."
  }
  validation {
    condition     = var.tls_cert_file == null || !var.failover || var.tls_ca_file != null
    error_message = "With TLS and failover the name servers' controller runs its raft port with mutual TLS against tls_ca_file: set it."
  }
}

variable "tls_client_auth" {
  description = "Require client certificates signed by tls_ca_file on every node (Strata's --tls-client-auth): mutual TLS. Needs TLS on and tls_ca_file."
  type        = bool
  default     = false

  validation {
    condition     = !var.tls_client_auth || (var.tls_ca_file != null && var.tls_cert_file != null)
    error_message = "tls_client_auth needs tls_ca_file (client certificates are verified against it) and TLS on (tls_cert_file and tls_key_file)."
  }
}

variable "max_conns" {
  description = "Client connections each node accepts at most (Strata's --max-conns); null: Strata's default (10000)."
  type        = number
  default     = null

  validation {
    condition     = var.max_conns == null || try(var.max_conns == floor(var.max_conns) && var.max_conns >= 1, false)
    error_message = "max_conns must be a whole number of at least 1, or null."
  }
}

variable "max_conns_per_ip" {
  description = "Connections from one address each node accepts at most (Strata's --max-conns-per-ip); null: Strata's default (1000)."
  type        = number
  default     = null

  validation {
    condition     = var.max_conns_per_ip == null || try(var.max_conns_per_ip == floor(var.max_conns_per_ip) && var.max_conns_per_ip >= 1, false)
    error_message = "max_conns_per_ip must be a whole number of at least 1, or null."
  }
}

variable "max_inflight" {
  description = "Requests one connection may have being served by a broker, follower or reader (Strata's --max-inflight); null: Strata's default (1024). Name servers do not use it."
  type        = number
  default     = null

  validation {
    condition     = var.max_inflight == null || try(var.max_inflight == floor(var.max_inflight) && var.max_inflight >= 1, false)
    error_message = "max_inflight must be a whole number of at least 1, or null."
  }
}

variable "max_held_pulls" {
  description = "Pulls a broker, follower or reader holds for new messages at most (Strata's --max-held-pulls); null: Strata's default (100000). Name servers do not use it."
  type        = number
  default     = null

  validation {
    condition     = var.max_held_pulls == null || try(var.max_held_pulls == floor(var.max_held_pulls) && var.max_held_pulls >= 1, false)
    error_message = "max_held_pulls must be a whole number of at least 1, or null."
  }
}

variable "credentials_env_file" {
  description = "Path on the brokers, followers and readers of a root-only (0600) environment file of yours that their unit reads if it exists (EnvironmentFile=-): for STRATA_ACCESS_KEY and STRATA_SECRET_KEY when a broker should sign its own requests with an account other than acl_file's first admin. Never written by Terraform; S3 needs nothing in it (the instance role). null: none."
  type        = string
  default     = null
}
