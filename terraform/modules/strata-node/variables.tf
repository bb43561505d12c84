# Inputs of one Strata node. Every setting here ends up as a STRATA_<NAME>
# variable (the command-line contract: `--data-dir` is STRATA_DATA_DIR), or
# in the systemd units and the boot-time preparation script.

# ---------------------------------------------------------------------------
# What the node is.

variable "role" {
  description = "What this node runs: \"namesrv\" (`strata namesrv`), \"broker\" (`strata broker`, a group's leader taking writes, broker id 0), \"follower\" (`strata broker --role follower`, a replica of its group leader's log, broker id 1 and up), \"reader\" (`strata broker --role reader`, a tier reader serving a broker's offloaded history) or \"standalone\" (`strata standalone`, name server and broker in one process)."
  type        = string

  validation {
    condition     = contains(["namesrv", "broker", "follower", "reader", "standalone"], var.role)
    error_message = "role must be one of \"namesrv\", \"broker\", \"follower\", \"reader\" or \"standalone\"."
  }
}

variable "service_name" {
  description = "Name of the systemd service (<service_name>.service) and of the files rendered for it. Give nodes sharing a host different names."
  type        = string
  default     = "strata"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", var.service_name))
    error_message = "service_name must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit."
  }
}

variable "cluster_name" {
  description = "Cluster the broker registers under (STRATA_CLUSTER)."
  type        = string
  default     = "DefaultCluster"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.cluster_name))
    error_message = "cluster_name must be 1-64 letters, digits, '_' or '-'."
  }
}

variable "broker_name" {
  description = "Broker name (STRATA_BROKER_NAME): the group. A leader, its followers and the tier readers serving its history share it."
  type        = string
  default     = "broker-a"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.broker_name))
    error_message = "broker_name must be 1-64 letters, digits, '_' or '-'."
  }
}

variable "broker_id" {
  description = "Broker id (STRATA_BROKER_ID): 0 for a leader (role broker or standalone), 1 and up for followers and tier readers (distinct within the group)."
  type        = number
  default     = 0

  validation {
    condition     = var.broker_id == floor(var.broker_id) && var.broker_id >= 0 && var.broker_id <= 4294967295
    error_message = "broker_id must be a whole number from 0 to 4294967295."
  }
  validation {
    condition     = !contains(["broker", "standalone"], var.role) || var.broker_id == 0
    error_message = "A leader (role broker or standalone) has broker_id 0; ids 1 and up are for followers (role follower) and tier readers (role reader)."
  }
  validation {
    condition     = var.role != "follower" || var.broker_id >= 1
    error_message = "A follower (role follower) needs a broker_id of 1 or more: 0 is its group's leader."
  }
  validation {
    condition     = var.role != "reader" || var.broker_id >= 1 || var.broker_id_from_address
    error_message = "A tier reader (role reader) needs a broker_id of 1 or more (or broker_id_from_address = true)."
  }
}

variable "broker_id_from_address" {
  description = "Tier readers only: derive the broker id at boot from the host's IPv4 address (a.b.c.d as a 32-bit number), so that the instances of an auto-scaling group, which share one configuration, still get distinct ids."
  type        = bool
  default     = false

  validation {
    condition     = !var.broker_id_from_address || var.role == "reader"
    error_message = "broker_id_from_address is for tier readers (role reader) only: a leader's id is 0, and a follower's is fixed (its place in the group)."
  }
}

# ---------------------------------------------------------------------------
# Addresses.

variable "namesrv_addresses" {
  description = "Name servers the broker registers with, each \"host:port\" (rendered as STRATA_NAMESRV, joined with ';'). Required for roles broker, follower and reader; optional for standalone (which runs its own); unused by namesrv."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for a in var.namesrv_addresses : can(regex("^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9][A-Za-z0-9.-]*):([0-9]{1,5})$", a)) &&
      try(tonumber(regex(":([0-9]{1,5})$", a)[0]) >= 1 && tonumber(regex(":([0-9]{1,5})$", a)[0]) <= 65535, false)
    ])
    error_message = "Each name-server address must be host:port (port 1-65535), e.g. \"10.0.1.10:9876\"."
  }
  validation {
    condition     = !contains(["broker", "follower", "reader"], var.role) || length(var.namesrv_addresses) > 0
    error_message = "A broker, follower or tier reader needs at least one name server in namesrv_addresses."
  }
}

variable "listen" {
  description = "Broker client address (STRATA_LISTEN). null picks the role's default: \":10911\" for broker, follower and reader, \"127.0.0.1:10911\" for standalone."
  type        = string
  default     = null

  validation {
    condition = var.listen == null || (
      can(regex("^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]*):([0-9]{1,5})$", var.listen)) &&
      try(tonumber(regex(":([0-9]{1,5})$", var.listen)[0]) >= 1 && tonumber(regex(":([0-9]{1,5})$", var.listen)[0]) <= 65535, false)
    )
    error_message = "listen must be [host]:port with a port from 1 to 65535, e.g. \":10911\" or \"10.0.1.20:10911\"."
  }
}

variable "namesrv_listen" {
  description = "Name-server address (STRATA_NAMESRV_LISTEN) of roles namesrv and standalone. null picks \":9876\" for namesrv and \"127.0.0.1:9876\" for standalone."
  type        = string
  default     = null

  validation {
    condition = var.namesrv_listen == null || (
      can(regex("^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]*):([0-9]{1,5})$", var.namesrv_listen)) &&
      try(tonumber(regex(":([0-9]{1,5})$", var.namesrv_listen)[0]) >= 1 && tonumber(regex(":([0-9]{1,5})$", var.namesrv_listen)[0]) <= 65535, false)
    )
    error_message = "namesrv_listen must be [host]:port with a port from 1 to 65535, e.g. \":9876\"."
  }
}

variable "advertise" {
  description = "ip:port clients dial for this broker (STRATA_ADVERTISE). \"\" leaves Strata's default (the listen address, a wildcard one advertised as 127.0.0.1: right only on a single host). \"auto\" has the boot-time preparation find the host's primary IPv4 address and advertise it with the listen port (for VMs whose address is not known when rendering)."
  type        = string
  default     = ""

  validation {
    condition = var.advertise == "" || var.advertise == "auto" || can(regex(
      "^([0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}|\\[[0-9A-Fa-f:.]+\\]):[0-9]{1,5}$", var.advertise
    ))
    error_message = "advertise must be \"\", \"auto\" or an ip:port such as \"10.0.1.20:10911\" (an IP address, not a host name)."
  }
  validation {
    condition     = var.advertise == "" || var.role != "namesrv"
    error_message = "advertise is a broker setting; a name server (role namesrv) does not use it."
  }
}

variable "http_listen" {
  description = "Address of /metrics, /healthz, the admin API and /debug/pprof (STRATA_HTTP_LISTEN). Defaults to loopback; a wildcard address (\":8080\", \"0.0.0.0:8080\", \"[::]:8080\") also needs allow_http_listen_any = true."
  type        = string
  default     = "127.0.0.1:8080"

  validation {
    condition = can(regex("^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]*):([0-9]{1,5})$", var.http_listen)) && try(
      tonumber(regex(":([0-9]{1,5})$", var.http_listen)[0]) >= 1 && tonumber(regex(":([0-9]{1,5})$", var.http_listen)[0]) <= 65535, false
    )
    error_message = "http_listen must be host:port with a port from 1 to 65535, e.g. \"127.0.0.1:8080\" or \"10.0.1.20:8080\"."
  }
  validation {
    condition     = var.allow_http_listen_any || !can(regex("^(0\\.0\\.0\\.0|\\[::\\]|\\[0*:0*:0*:0*:0*:0*:0*:0*\\]|)?:[0-9]+$", var.http_listen))
    error_message = "http_listen would serve the admin API, metrics and pprof on every interface. Bind it to loopback or a private address, or set allow_http_listen_any = true when a firewall or security group limits who can reach the port."
  }
}

variable "allow_http_listen_any" {
  description = "Allow http_listen on a wildcard address. Set it only when a firewall or security group restricts the port to administrators."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# Replication and failover: a group (one broker_name) is a leader (role
# broker, id 0) and its followers (role follower, ids 1 and up). Give every
# member of a group the same settings: under failover any of them may lead.

variable "replication" {
  description = "Roles broker and follower: when the group's leader acknowledges a send (STRATA_REPLICATION): \"async\" after its own write, \"sync\" once min_insync_replicas copies, its own included, hold it."
  type        = string
  default     = "async"

  validation {
    condition     = contains(["async", "sync"], var.replication)
    error_message = "replication must be \"async\" or \"sync\"."
  }
  validation {
    condition     = var.replication == "async" || contains(["broker", "follower"], var.role)
    error_message = "replication is a setting of a group's leader and followers (roles broker and follower)."
  }
}

variable "min_insync_replicas" {
  description = "Roles broker and follower, with replication = \"sync\": how many copies, the leader's included, a send needs (STRATA_MIN_INSYNC_REPLICAS); with fewer in sync, sends fail at once. null: Strata's default, 2 under sync and 1 under async (rendered as such)."
  type        = number
  default     = null

  validation {
    condition     = var.min_insync_replicas == null || try(var.min_insync_replicas == floor(var.min_insync_replicas) && var.min_insync_replicas >= 1, false)
    error_message = "min_insync_replicas must be a whole number of at least 1 (the leader's own copy), or null."
  }
  validation {
    condition     = var.min_insync_replicas == null || var.replication == "sync" || try(var.min_insync_replicas <= 1, false)
    error_message = "min_insync_replicas above 1 needs replication = \"sync\": under async a send waits for the leader's copy only."
  }
  validation {
    condition     = var.min_insync_replicas == null || contains(["broker", "follower"], var.role)
    error_message = "min_insync_replicas is a setting of a group's leader and followers (roles broker and follower)."
  }
}

variable "failover" {
  description = "Roles broker and follower: let the name servers' failover controller elect the group's leader among its members (STRATA_FAILOVER=on); the name servers need controller_listen. false: the leader is broker id 0. With a cold tier, give every member of the group the same tier_url, hot_retention and cache_size: only the current leader offloads, so a newly elected leader takes over offloading."
  type        = bool
  default     = false

  validation {
    condition     = !var.failover || contains(["broker", "follower"], var.role)
    error_message = "failover is for a group's leader and followers (roles broker and follower): a name server runs the controller (controller_listen), and a tier reader takes no part in failover."
  }
}

variable "ha_listen" {
  description = "Roles broker and follower: the replication port (STRATA_HA_LISTEN), [host]:port, which the leader serves its followers on (under failover, any member may lead). null: Strata's default, listen's host with the next port (\":10912\" for \":10911\"), not rendered."
  type        = string
  default     = null

  validation {
    condition = var.ha_listen == null || (
      can(regex("^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]*):([0-9]{1,5})$", var.ha_listen)) &&
      try(tonumber(regex(":([0-9]{1,5})$", var.ha_listen)[0]) >= 1 && tonumber(regex(":([0-9]{1,5})$", var.ha_listen)[0]) <= 65535, false)
    )
    error_message = "ha_listen must be [host]:port with a port from 1 to 65535, e.g. \":10912\" or \"10.0.1.20:10912\"."
  }
  validation {
    condition     = var.ha_listen == null || contains(["broker", "follower"], var.role)
    error_message = "ha_listen is a setting of a group's leader and followers (roles broker and follower)."
  }
}

variable "ha_advertise" {
  description = "Roles broker and follower: the host:port followers dial for this node's replication port (STRATA_HA_ADVERTISE). \"\": Strata's default, the advertised client host with ha_listen's port (right with advertise = \"auto\" too)."
  type        = string
  default     = ""

  validation {
    condition = var.ha_advertise == "" || (
      can(regex("^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9][A-Za-z0-9.-]*):([0-9]{1,5})$", var.ha_advertise)) &&
      !can(regex("^(0\\.0\\.0\\.0|\\[[0:]*\\]):", var.ha_advertise)) &&
      try(tonumber(regex(":([0-9]{1,5})$", var.ha_advertise)[0]) >= 1 && tonumber(regex(":([0-9]{1,5})$", var.ha_advertise)[0]) <= 65535, false)
    )
    error_message = "ha_advertise must be \"\" or host:port that followers can dial (port 1-65535, not a wildcard address), e.g. \"10.0.1.20:10912\"."
  }
  validation {
    condition     = var.ha_advertise == "" || contains(["broker", "follower"], var.role)
    error_message = "ha_advertise is a setting of a group's leader and followers (roles broker and follower)."
  }
}

variable "replicate_from" {
  description = "Role follower without failover: the leader's replication address, host:port (STRATA_REPLICATE_FROM). \"\": learnt from the name servers, where the leader registers its ha_advertise address."
  type        = string
  default     = ""

  validation {
    condition = var.replicate_from == "" || (
      can(regex("^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9][A-Za-z0-9.-]*):([0-9]{1,5})$", var.replicate_from)) &&
      !can(regex("^(0\\.0\\.0\\.0|\\[[0:]*\\]):", var.replicate_from)) &&
      try(tonumber(regex(":([0-9]{1,5})$", var.replicate_from)[0]) >= 1 && tonumber(regex(":([0-9]{1,5})$", var.replicate_from)[0]) <= 65535, false)
    )
    error_message = "replicate_from must be \"\" or the leader's replication address as host:port (port 1-65535, not a wildcard address), e.g. \"10.0.1.20:10912\"."
  }
  validation {
    condition     = var.replicate_from == "" || (var.role == "follower" && !var.failover)
    error_message = "replicate_from is for a follower (role follower) without failover: under failover the controller says who leads."
  }
}

# ---------------------------------------------------------------------------
# The failover controller (roles namesrv and standalone).

variable "controller_listen" {
  description = "Roles namesrv and standalone: run the failover controller, a raft group embedded in the name servers that elects the leader of every group with failover, on this ip:port (STRATA_CONTROLLER_LISTEN). Its raft peers dial it, so it is the host's own IP address (not a wildcard or a host name), and it is in controller_peers. Its raft state goes to <data_dir>/controller, which the unit then lets the service write. null: no controller."
  type        = string
  default     = null

  validation {
    condition = var.controller_listen == null || (
      can(regex("^([0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}|\\[[0-9A-Fa-f:.]+\\]):([0-9]{1,5})$", var.controller_listen)) &&
      !can(regex("^(0\\.0\\.0\\.0|\\[[0:]*\\]):", var.controller_listen)) &&
      try(tonumber(regex(":([0-9]{1,5})$", var.controller_listen)[0]) >= 1 && tonumber(regex(":([0-9]{1,5})$", var.controller_listen)[0]) <= 65535, false)
    )
    error_message = "controller_listen must be the host's own ip:port, e.g. \"10.0.1.10:9878\": the controller advertises the address it binds to its raft peers, so not a wildcard (\":9878\", \"0.0.0.0:9878\") or a host name."
  }
  validation {
    condition     = var.controller_listen == null || contains(["namesrv", "standalone"], var.role)
    error_message = "controller_listen is for name servers (roles namesrv and standalone): brokers reach the controller through the name servers."
  }
}

variable "controller_peers" {
  description = "Every name server's controller_listen, this one's included, each ip:port (STRATA_CONTROLLER_PEERS, joined with ';'); give every name server the same list (an odd number: three tolerate the loss of one). []: this controller alone."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for a in var.controller_peers : can(regex("^([0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}|\\[[0-9A-Fa-f:.]+\\]):([0-9]{1,5})$", a)) &&
      !can(regex("^(0\\.0\\.0\\.0|\\[[0:]*\\]):", a)) &&
      try(tonumber(regex(":([0-9]{1,5})$", a)[0]) >= 1 && tonumber(regex(":([0-9]{1,5})$", a)[0]) <= 65535, false)
    ])
    error_message = "Each controller peer must be ip:port (the peer's controller_listen), e.g. \"10.0.1.10:9878\"."
  }
  validation {
    condition     = length(var.controller_peers) == 0 || (var.controller_listen != null && contains(var.controller_peers, coalesce(var.controller_listen, "-")))
    error_message = "controller_peers must include this name server's own controller_listen (and needs one)."
  }
}

# ---------------------------------------------------------------------------
# Storage.

variable "data_dir" {
  description = "Hot tier and local state (STRATA_DATA_DIR) of roles broker, follower, reader and standalone, and the failover controller's raft state (<data_dir>/controller) of a name server with controller_listen; the only path the service may write. A name server without a controller has none."
  type        = string
  default     = "/var/lib/strata"

  validation {
    condition     = can(regex("^/[A-Za-z0-9._+@/-]*[A-Za-z0-9._+@-]$", var.data_dir)) && !contains(split("/", var.data_dir), "..")
    error_message = "data_dir must be an absolute path other than / of letters, digits and ._+@-/ (no spaces or quotes), without \"..\"."
  }
}

variable "data_device" {
  description = "Block device (a path, or a shell glob such as \"/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_*\") to mount at data_dir at every boot; the first whole disk that matches is used. A device with no filesystem signature is formatted first (an instance store is blank after each stop and start); one with any other signature is never formatted. null leaves data_dir on whatever filesystem holds it."
  type        = string
  default     = null

  validation {
    condition     = var.data_device == null || can(regex("^/dev/[A-Za-z0-9._+@/*?:\\[\\]-]+$", var.data_device))
    error_message = "data_device must be a path or glob under /dev/ without spaces or quotes, e.g. \"/dev/nvme1n1\"."
  }
  validation {
    condition     = var.data_device == null || var.role != "namesrv" || var.controller_listen != null
    error_message = "data_device is for nodes with a data directory (broker, follower, reader, standalone, or a name server with controller_listen); a name server without a controller keeps no data."
  }
}

variable "data_device_fs_type" {
  description = "Filesystem data_device is formatted with when it is blank: \"ext4\" or \"xfs\"."
  type        = string
  default     = "ext4"

  validation {
    condition     = contains(["ext4", "xfs"], var.data_device_fs_type)
    error_message = "data_device_fs_type must be \"ext4\" or \"xfs\"."
  }
}

variable "tier_url" {
  description = "Cold tier (STRATA_TIER): file:///path, s3://bucket/prefix?region=… (also ?endpoint=…), or minio://host:port/bucket/prefix (?secure=true for HTTPS). Never put credentials here: S3 takes the instance role (or the AWS_* variables), MinIO the MINIO_* or AWS_* variables, from credentials_env_file. \"\" renders nothing: no cold tier for a broker, Strata's file://<data_dir>/tier for standalone; \"none\" disables it explicitly. Required for role reader. Give a group's leader and followers the same tier_url (with or without failover): only the current leader offloads; followers keep its manifest in view, delete local segments once the leader offloaded them (after their own hot_retention), serve offloaded history from the cold tier, and rebuild from it when they fall behind the leader's first local offset."
  type        = string
  default     = ""

  validation {
    condition     = var.tier_url == "" || var.tier_url == "none" || can(regex("^(file|s3|minio)://", var.tier_url))
    error_message = "tier_url must be \"\", \"none\", or a file://, s3:// or minio:// URL."
  }
  validation {
    condition     = !can(regex("^[A-Za-z0-9+.-]+://[^/?#]*@", var.tier_url))
    error_message = "Credentials do not belong in tier_url (it is written to a world-readable file): use an instance role, or the AWS_* / MINIO_* variables in credentials_env_file."
  }
  validation {
    condition     = !startswith(var.tier_url, "s3://") || can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^?#]*)?(\\?[^#]*)?$", var.tier_url))
    error_message = "An s3:// tier URL needs a bucket: s3://bucket/prefix?region=eu-west-1 (bucket names are 3-63 lower-case letters, digits, '.' and '-')."
  }
  validation {
    condition     = !startswith(var.tier_url, "minio://") || can(regex("^minio://(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^?#]*)?(\\?[^#]*)?$", var.tier_url))
    error_message = "A minio:// tier URL needs a server with a port and a bucket: minio://host:9000/bucket/prefix (bucket names are 3-63 lower-case letters, digits, '.' and '-')."
  }
  validation {
    condition     = !startswith(var.tier_url, "file://") || can(regex("^file:///[^?#]+$", var.tier_url))
    error_message = "A file:// tier URL needs an absolute directory: file:///var/lib/strata-tier."
  }
  validation {
    condition     = var.role != "reader" || (var.tier_url != "" && var.tier_url != "none")
    error_message = "A tier reader (role reader) needs tier_url: the object store whose history it serves."
  }
}

variable "hot_retention" {
  description = "How long offloaded segments also stay on local disk (STRATA_HOT_RETENTION): a share of the data disk (\"80%\"), a size (\"10GiB\"), an age (\"24h\"), or \"0\" to delete them once offloaded. Rendered for leaders, followers and standalone when there is a cold tier (a follower deletes a segment only once its leader offloaded it)."
  type        = string
  default     = "80%"

  validation {
    condition = var.hot_retention == "0" || can(regex("^[0-9]+(\\.[0-9]+)?(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$", var.hot_retention)) || can(regex("^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$", var.hot_retention)) || (
      can(regex("^[0-9]+(\\.[0-9]+)?%$", var.hot_retention)) && try(tonumber(trimsuffix(var.hot_retention, "%")) > 0 && tonumber(trimsuffix(var.hot_retention, "%")) <= 100, false)
    )
    error_message = "hot_retention must be \"0\", a percentage in (0, 100] such as \"80%\", a size such as \"10GiB\", or a duration such as \"24h\"."
  }
}

variable "cache_size" {
  description = "Memory for decompressed cold blocks (STRATA_CACHE_SIZE), e.g. \"512MiB\". Rendered when there is a cold tier."
  type        = string
  default     = "512MiB"

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$", var.cache_size))
    error_message = "cache_size must be a size such as \"512MiB\" or \"2GiB\"."
  }
}

variable "segment_size" {
  description = "Commit-log segment size (STRATA_SEGMENT_SIZE) of leaders and followers, e.g. \"1GiB\". A group's followers must have their leader's."
  type        = string
  default     = "1GiB"

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$", var.segment_size))
    error_message = "segment_size must be a size such as \"64MiB\" or \"1GiB\"."
  }
}

variable "segment_max_age" {
  description = "Seal (and so offload) the active segment after this long even if it is not full (STRATA_SEGMENT_MAX_AGE), a Go duration such as \"10m\"."
  type        = string
  default     = "10m"

  validation {
    condition     = can(regex("^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$", var.segment_max_age))
    error_message = "segment_max_age must be a duration such as \"10m\", \"30s\" or \"1h30m\"."
  }
}

variable "flush" {
  description = "When a leader acknowledges a send (STRATA_FLUSH): \"sync\" after fdatasync, \"async\" before. Rendered for followers too (a follower may be elected leader): give a group's members the same."
  type        = string
  default     = "sync"

  validation {
    condition     = contains(["sync", "async"], var.flush)
    error_message = "flush must be \"sync\" or \"async\"."
  }
}

variable "auto_create_topics" {
  description = "Create topics on their first send (STRATA_AUTO_CREATE_TOPICS). Off by default on servers: create topics with `strata admin topic create`."
  type        = bool
  default     = false
}

variable "log_level" {
  description = "debug, info, warn or error (STRATA_LOG_LEVEL)."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level must be one of \"debug\", \"info\", \"warn\", \"error\"."
  }
}

variable "extra_env" {
  description = "More variables for the environment file (e.g. AWS_REGION, or STRATA_* settings this module has no input for). Never credentials: see credentials_env_file."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.extra_env) : can(regex("^[A-Za-z_][A-Za-z0-9_]*$", k))])
    error_message = "extra_env names must be letters, digits and '_', not starting with a digit."
  }
  validation {
    condition     = alltrue([for v in values(var.extra_env) : !can(regex("[\\r\\n\\x00]", v))])
    error_message = "extra_env values must be one line (no newline, carriage return or NUL)."
  }
  validation {
    condition = alltrue([for k in keys(var.extra_env) : !(
      contains(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "STRATA_ACCESS_KEY", "STRATA_SECRET_KEY"], upper(k)) ||
      can(regex("(?i)(SECRET|PASSWORD|TOKEN|CREDENTIAL)", k))
    )])
    error_message = "extra_env must not carry credentials: the environment file is world-readable and travels in cloud-init user data. Use an instance role, or put the keys in the file named by credentials_env_file (mode 0600)."
  }
}

variable "credentials_env_file" {
  description = "Absolute path of an operator-provided environment file with the node's credentials, root-owned, mode 0600: the object store's (MINIO_ACCESS_KEY and MINIO_SECRET_KEY, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and, for a broker that should sign its own requests with an account other than acl_file's first admin, STRATA_ACCESS_KEY and STRATA_SECRET_KEY. The unit reads it if it exists (EnvironmentFile=-path, as root before dropping privileges); this module never writes it. null: no such file (on AWS the instance role supplies the object store's credentials)."
  type        = string
  default     = null

  validation {
    condition     = var.credentials_env_file == null || can(regex("^/[A-Za-z0-9._+@/-]*[A-Za-z0-9._+@-]$", var.credentials_env_file))
    error_message = "credentials_env_file must be an absolute path of letters, digits and ._+@-/ (no spaces or quotes)."
  }
}

# ---------------------------------------------------------------------------
# Security: authentication (an ACL file), TLS and connection limits. This
# module only names the files: it never renders their content (the ACL file
# holds secret keys, the TLS key is one), so that they are never in
# Terraform's state or in cloud-init user data. Put them on the node
# yourself (configuration management, an image, a secrets agent), readable
# by the service user; Strata reloads them when they change. Give every node
# of a cluster the same acl_file and the same TLS setting: brokers sign
# their requests with the file's admin account, and a process with TLS
# dials the others with TLS.

variable "acl_file" {
  description = "Absolute path on the node of the accounts file (STRATA_ACL_FILE, `--acl-file`; YAML with RocketMQ's plain_acl.yml account fields): every request must then be signed, and Strata reloads it when it changes. It holds secret keys, so this module never writes it: create it yourself, owned by root with the service user's group, mode 0640. Brokers sign their own requests with its first admin account, or with STRATA_ACCESS_KEY/STRATA_SECRET_KEY from credentials_env_file. null: authentication off."
  type        = string
  default     = null

  validation {
    condition     = var.acl_file == null || can(regex("^/[A-Za-z0-9._+@/-]*[A-Za-z0-9._+@-]$", coalesce(var.acl_file, "-"))) && !contains(split("/", coalesce(var.acl_file, "-")), "..")
    error_message = "acl_file must be an absolute path of letters, digits and ._+@-/ (no spaces or quotes), without \"..\"."
  }
}

variable "require_auth" {
  description = "Refuse to start without an ACL file (STRATA_REQUIRE_AUTH=true, `--require-auth`): a guard against a node that would otherwise run with authentication off. Needs acl_file."
  type        = bool
  default     = false

  validation {
    condition     = !var.require_auth || var.acl_file != null
    error_message = "require_auth needs acl_file: Strata refuses to start with --require-auth and no --acl-file."
  }
}

variable "tls_cert_file" {
  description = "Absolute path on the node of the PEM certificate chain (STRATA_TLS_CERT, `--tls-cert`): the client, name-server and replication ports then take TLS only, and the node dials other Strata processes with TLS. Clients and peers verify it against the name or IP address they dial (brokers advertise IP addresses): it must name them. Needs tls_key_file. null: no TLS."
  type        = string
  default     = null

  validation {
    condition     = var.tls_cert_file == null || can(regex("^/[A-Za-z0-9._+@/-]*[A-Za-z0-9._+@-]$", coalesce(var.tls_cert_file, "-"))) && !contains(split("/", coalesce(var.tls_cert_file, "-")), "..")
    error_message = "tls_cert_file must be an absolute path of letters, digits and ._+@-/ (no spaces or quotes), without \"..\"."
  }
  validation {
    condition     = (var.tls_cert_file == null) == (var.tls_key_file == null)
    error_message = "tls_cert_file and tls_key_file go together: set both (TLS on) or neither."
  }
}

variable "tls_key_file" {
  description = "Absolute path on the node of the PEM private key of tls_cert_file (STRATA_TLS_KEY, `--tls-key`). A secret: this module never writes it; create it yourself, owned by root with the service user's group, mode 0640."
  type        = string
  default     = null

  validation {
    condition     = var.tls_key_file == null || can(regex("^/[A-Za-z0-9._+@/-]*[A-Za-z0-9._+@-]$", coalesce(var.tls_key_file, "-"))) && !contains(split("/", coalesce(var.tls_key_file, "-")), "..")
    error_message = "tls_key_file must be an absolute path of letters, digits and ._+@-/ (no spaces or quotes), without \"..\"."
  }
}

variable "tls_ca_file" {
  description = "Absolute path on the node of the PEM CA certificates (STRATA_TLS_CA, `--tls-ca`) the node verifies the servers it dials with (null: the system's roots) and, with tls_client_auth, its clients. Used only with TLS on (tls_cert_file). Required for a name server running the failover controller with TLS: its raft peers authenticate each other with it (mutual TLS)."
  type        = string
  default     = null

  validation {
    condition     = var.tls_ca_file == null || can(regex("^/[A-Za-z0-9._+@/-]*[A-Za-z0-9._+@-]$", coalesce(var.tls_ca_file, "-"))) && !contains(split("/", coalesce(var.tls_ca_file, "-")), "..")
    error_message = "tls_ca_file must be an absolute path of letters, digits and ._+@-/ (no spaces or quotes), without \"..\"."
  }
  validation {
    condition     = var.tls_ca_file == null || var.tls_cert_file != null
    error_message = "tls_ca_file is used only with TLS on: set tls_cert_file and tls_key_file too (without them Strata ignores the CA)."
  }
  validation {
    condition     = var.tls_cert_file == null || var.controller_listen == null || var.tls_ca_file != null
    error_message = "With TLS on, the failover controller (controller_listen) runs its raft port with mutual TLS against tls_ca_file: set it."
  }
}

variable "tls_client_auth" {
  description = "Require client certificates signed by tls_ca_file (STRATA_TLS_CLIENT_AUTH=true, `--tls-client-auth`): mutual TLS on the client, name-server and replication ports. Needs TLS on (tls_cert_file, tls_key_file) and tls_ca_file."
  type        = bool
  default     = false

  validation {
    condition     = !var.tls_client_auth || (var.tls_ca_file != null && var.tls_cert_file != null)
    error_message = "tls_client_auth needs tls_ca_file (client certificates are verified against it) and TLS on (tls_cert_file and tls_key_file)."
  }
}

variable "max_conns" {
  description = "Client connections a server accepts at most (STRATA_MAX_CONNS, `--max-conns`); more are closed at once. Every role. null: Strata's default (10000), not rendered."
  type        = number
  default     = null

  validation {
    condition     = var.max_conns == null || try(var.max_conns == floor(var.max_conns) && var.max_conns >= 1, false)
    error_message = "max_conns must be a whole number of at least 1, or null (Strata's default)."
  }
}

variable "max_conns_per_ip" {
  description = "Connections from one address at most (STRATA_MAX_CONNS_PER_IP, `--max-conns-per-ip`). Every role. null: Strata's default (1000), not rendered."
  type        = number
  default     = null

  validation {
    condition     = var.max_conns_per_ip == null || try(var.max_conns_per_ip == floor(var.max_conns_per_ip) && var.max_conns_per_ip >= 1, false)
    error_message = "max_conns_per_ip must be a whole number of at least 1, or null (Strata's default)."
  }
}

variable "max_inflight" {
  description = "Requests one connection may have being served (STRATA_MAX_INFLIGHT, `--max-inflight`); more are answered SYSTEM_BUSY. Broker roles only (broker, follower, reader, standalone): not rendered for a name server. null: Strata's default (1024), not rendered."
  type        = number
  default     = null

  validation {
    condition     = var.max_inflight == null || try(var.max_inflight == floor(var.max_inflight) && var.max_inflight >= 1, false)
    error_message = "max_inflight must be a whole number of at least 1, or null (Strata's default)."
  }
}

variable "max_held_pulls" {
  description = "Pulls held for new messages at most (STRATA_MAX_HELD_PULLS, `--max-held-pulls`); more are answered at once. Broker roles only (broker, follower, reader, standalone): not rendered for a name server. null: Strata's default (100000), not rendered."
  type        = number
  default     = null

  validation {
    condition     = var.max_held_pulls == null || try(var.max_held_pulls == floor(var.max_held_pulls) && var.max_held_pulls >= 1, false)
    error_message = "max_held_pulls must be a whole number of at least 1, or null (Strata's default)."
  }
}

# ---------------------------------------------------------------------------
# Installation.

variable "binary_path" {
  description = "Where the strata binary is (ExecStart runs `<binary_path> <subcommand>`)."
  type        = string
  default     = "/usr/local/bin/strata"

  validation {
    condition     = can(regex("^/[A-Za-z0-9._+@/-]*[A-Za-z0-9._+@-]$", var.binary_path))
    error_message = "binary_path must be an absolute path of letters, digits and ._+@-/ (no spaces or quotes)."
  }
}

variable "binary_url" {
  description = "http(s) URL of the static strata binary for the host's architecture (scripts/release.sh builds them). When set, the boot-time preparation downloads it to binary_path unless the file there already has binary_sha256. \"\": install the binary some other way (an image, configuration management)."
  type        = string
  default     = ""

  validation {
    condition     = var.binary_url == "" || can(regex("^https?://[^\\s'\"]+$", var.binary_url))
    error_message = "binary_url must be \"\" or an http:// or https:// URL without spaces or quotes."
  }
}

variable "binary_sha256" {
  description = "Lower-case hex SHA-256 of the binary at binary_url (from dist/SHA256SUMS); required with binary_url."
  type        = string
  default     = ""

  validation {
    condition     = var.binary_url == "" || can(regex("^[0-9a-f]{64}$", var.binary_sha256))
    error_message = "binary_sha256 must be the 64 lower-case hex digits of the binary's SHA-256 when binary_url is set (a download is never run unchecked)."
  }
}

variable "user" {
  description = "Dedicated system account the service runs as (created at boot if missing; no login, no home)."
  type        = string
  default     = "strata"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,30}$", var.user)) && var.user != "root"
    error_message = "user must be a system account name (lower-case letters, digits, '_' and '-'), and not root."
  }
}

variable "config_dir" {
  description = "Directory of the rendered environment file (<config_dir>/<service_name>.env)."
  type        = string
  default     = "/etc/strata"

  validation {
    condition     = can(regex("^/[A-Za-z0-9._+@/-]*[A-Za-z0-9._+@-]$", var.config_dir))
    error_message = "config_dir must be an absolute path of letters, digits and ._+@-/ (no spaces or quotes)."
  }
}

variable "limit_nofile" {
  description = "Open-file limit of the service (LimitNOFILE): connections, segments and index files."
  type        = number
  default     = 1048576

  validation {
    condition     = var.limit_nofile == floor(var.limit_nofile) && var.limit_nofile >= 4096
    error_message = "limit_nofile must be a whole number of at least 4096."
  }
}
