variable "hosts" {
  description = "The hosts you already have: each host's IPv4 address (the one clients and brokers reach it on; Strata advertises addresses, not names) => its role: \"namesrv\", \"broker\" (a group's leader), \"follower:<broker name>\" (a follower of that group; \"follower\" alone: of the first broker's), \"reader\" or \"standalone\". Brokers are named broker-a, broker-b, … in lexical order of their addresses; a group's followers, and the readers, get broker ids 1, 2, … in the same order."
  type        = map(string)

  validation {
    condition     = length(var.hosts) > 0
    error_message = "hosts must name at least one host."
  }
  validation {
    condition     = alltrue([for ip in keys(var.hosts) : can(regex("^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$", ip))])
    error_message = "Every key of hosts must be an IPv4 address such as \"10.0.0.11\" (brokers advertise it to clients)."
  }
  validation {
    condition     = alltrue([for r in values(var.hosts) : can(regex("^(namesrv|broker|follower(:[A-Za-z0-9_-]{1,64})?|reader|standalone)$", r))])
    error_message = "Every role in hosts must be \"namesrv\", \"broker\", \"follower:<broker name>\" (or \"follower\": of the first broker), \"reader\" or \"standalone\"."
  }
  validation {
    condition     = !contains(values(var.hosts), "standalone") || length(var.hosts) == 1
    error_message = "A standalone node runs its own name server and broker: give it as the only host."
  }
  validation {
    condition     = !anytrue([for r in values(var.hosts) : r == "broker" || r == "reader" || startswith(r, "follower")]) || contains(values(var.hosts), "namesrv")
    error_message = "Brokers, followers and readers need at least one host with role \"namesrv\"."
  }
}

variable "minio_endpoint" {
  description = "MinIO server as host:port, e.g. \"minio.internal:9000\"."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9.-]+:[0-9]{1,5}$", var.minio_endpoint))
    error_message = "minio_endpoint must be host:port, e.g. \"minio.internal:9000\"."
  }
}

variable "minio_bucket" {
  description = "Bucket of the cold tier (create it first: `mc mb`)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.minio_bucket))
    error_message = "minio_bucket must be a bucket name: 3-63 lower-case letters, digits, '.' and '-'."
  }
}

variable "minio_prefix" {
  description = "Key prefix of the cluster's objects in the bucket."
  type        = string
  default     = "strata"

  validation {
    condition     = var.minio_prefix == "" || can(regex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.minio_prefix))
    error_message = "minio_prefix must be \"\" or slash-separated segments of letters, digits, '_', '.' and '-'."
  }
}

variable "minio_secure" {
  description = "Reach MinIO over HTTPS."
  type        = bool
  default     = true
}

variable "credentials_env_file" {
  description = "On each host that uses MinIO (every broker, follower, reader and standalone node: all but the name servers), the root-owned (mode 0600) file you create with the MinIO access key: MINIO_ACCESS_KEY=… and MINIO_SECRET_KEY=… lines, and, with acl_file, optionally STRATA_ACCESS_KEY=… and STRATA_SECRET_KEY=… (the account the broker signs its own requests with; default: the ACL file's first admin). Never rendered by Terraform."
  type        = string
  default     = "/etc/strata/credentials.env"
}

variable "cluster_name" {
  description = "Cluster name the brokers register under."
  type        = string
  default     = "DefaultCluster"
}

variable "reader_broker_name" {
  description = "Broker name whose history the readers serve; null: the first broker's (broker-a)."
  type        = string
  default     = null
}

variable "namesrv_port" {
  description = "Name-server port on every name-server host."
  type        = number
  default     = 9876
}

variable "broker_port" {
  description = "Client port of every broker and reader."
  type        = number
  default     = 10911
}

variable "http_port" {
  description = "Port of /metrics, /healthz and the admin API."
  type        = number
  default     = 8080
}

variable "ha_port" {
  description = "Replication port of leaders and followers (firewall it to the broker hosts). null: not rendered, Strata's default: broker_port + 1, or any free port if that one is taken (followers learn it from the name servers); set it to pin the port for a firewall."
  type        = number
  default     = null
}

variable "controller_port" {
  description = "With failover: the port of the failover controller on every name server (its raft peers, the other name servers, dial it: firewall it to them)."
  type        = number
  default     = 9878
}

variable "replication" {
  description = "When a group's leader acknowledges a send: \"async\" after its own write, \"sync\" once min_insync_replicas copies (its own included) hold it."
  type        = string
  default     = "async"
}

variable "min_insync_replicas" {
  description = "Under sync replication, the copies a send needs (every group must hold that many: its leader and followers); null: 2 under sync."
  type        = number
  default     = null
}

variable "failover" {
  description = "Let the name servers' failover controller elect the leader of every group that has followers. Every member of those groups keeps the MinIO cold tier (only the current leader offloads); tier readers must then serve a group without followers (they are not supported in failover groups yet)."
  type        = bool
  default     = false

  validation {
    condition     = !var.failover || anytrue([for r in values(var.hosts) : startswith(r, "follower")])
    error_message = "failover = true needs followers (\"follower:<broker name>\" hosts): the controller elects a new leader among them."
  }
}

variable "http_on_host_address" {
  description = "Serve /metrics, /healthz and the admin API on the host's address (for a Prometheus elsewhere) instead of 127.0.0.1. Firewall the port to your monitoring hosts."
  type        = bool
  default     = false
}

variable "data_dir" {
  description = "Data directory on broker, follower and reader hosts, and on name-server hosts with failover (the controller's raft state)."
  type        = string
  default     = "/var/lib/strata"
}

variable "data_device" {
  description = "Block device to format (when blank) and mount at data_dir on broker, follower and reader hosts; null if data_dir is already on the right disk."
  type        = string
  default     = null
}

variable "binary_path" {
  description = "Where the strata binary is on every host."
  type        = string
  default     = "/usr/local/bin/strata"
}

variable "binary_url" {
  description = "Optional http(s) URL each host downloads the binary from at boot (with binary_sha256); \"\" if you copy dist/strata-linux-<arch> to binary_path yourself."
  type        = string
  default     = ""
}

variable "binary_sha256" {
  description = "SHA-256 of the binary at binary_url (dist/SHA256SUMS)."
  type        = string
  default     = ""
}

variable "config_dir" {
  description = "Directory of the rendered environment files on every host."
  type        = string
  default     = "/etc/strata"
}

variable "auto_create_topics" {
  description = "Create topics on their first send. On by default: without acl_file, topic administration (`strata admin topic create`) is accepted from a broker's loopback only, which a multi-host cluster's brokers never see. With acl_file, an admin account administers topics from anywhere (STRATA_ACCESS_KEY/STRATA_SECRET_KEY), so you may turn it off."
  type        = bool
  default     = true
}

variable "segment_size" {
  description = "Commit-log segment size of the leaders and followers (the same in a group)."
  type        = string
  default     = "1GiB"
}

variable "segment_max_age" {
  description = "Seal and offload a segment after this long even if it is not full."
  type        = string
  default     = "10m"
}

variable "hot_retention" {
  description = "How long offloaded segments also stay on the leaders' and followers' disks (\"80%\", \"10GiB\", \"24h\", \"0\"); a follower deletes a segment only once its leader offloaded it."
  type        = string
  default     = "80%"
}

variable "flush" {
  description = "\"sync\" (acknowledge after fdatasync) or \"async\"."
  type        = string
  default     = "sync"
}

variable "cache_size" {
  description = "Memory for decompressed cold blocks per broker and reader."
  type        = string
  default     = "512MiB"
}

# ---------------------------------------------------------------------------
# Security (see ../../modules/strata-node, "Security"): paths on every host,
# the same on each; Terraform never renders the files' content.

variable "acl_file" {
  description = "Path on every host of the accounts file (Strata's --acl-file; YAML, RocketMQ plain_acl.yml fields), the same file on each: every request must then be signed, and brokers sign their own with its first admin account (or STRATA_ACCESS_KEY/STRATA_SECRET_KEY from credentials_env_file). It holds secret keys: create it yourself (root:strata, mode 0640). null: authentication off."
  type        = string
  default     = null
}

variable "require_auth" {
  description = "Every node refuses to start without the ACL file (Strata's --require-auth). Needs acl_file."
  type        = bool
  default     = false
}

variable "tls_cert_file" {
  description = "Path on every host of its own PEM certificate chain (Strata's --tls-cert), which must name the host's address (an IP SAN: the hosts are dialled by address): client, name-server and replication ports take TLS only. Needs tls_key_file. null: no TLS."
  type        = string
  default     = null
}

variable "tls_key_file" {
  description = "Path on every host of the private key of its certificate (Strata's --tls-key). A secret: create it yourself (root:strata, mode 0640)."
  type        = string
  default     = null
}

variable "tls_ca_file" {
  description = "Path on every host of the PEM CA certificates (Strata's --tls-ca) the hosts verify each other (and, with tls_client_auth, clients) with; null: the system's roots. Only with TLS on; required with TLS and failover (the controller's raft port uses mutual TLS)."
  type        = string
  default     = null
}

variable "tls_client_auth" {
  description = "Require client certificates signed by tls_ca_file (Strata's --tls-client-auth): mutual TLS. Needs TLS on and tls_ca_file."
  type        = bool
  default     = false
}

variable "max_conns" {
  description = "Client connections each node accepts at most (Strata's --max-conns); null: Strata's default (10000)."
  type        = number
  default     = null
}

variable "max_conns_per_ip" {
  description = "Connections from one address each node accepts at most (Strata's --max-conns-per-ip); null: Strata's default (1000)."
  type        = number
  default     = null
}

variable "max_inflight" {
  description = "Requests one connection may have being served by a broker, follower, reader or standalone node (Strata's --max-inflight); null: Strata's default (1024). Name servers do not use it."
  type        = number
  default     = null
}

variable "max_held_pulls" {
  description = "Pulls a broker, follower, reader or standalone node holds for new messages at most (Strata's --max-held-pulls); null: Strata's default (100000). Name servers do not use it."
  type        = number
  default     = null
}
