// Package namesrv is Strata's name server: the registry of live brokers and
// the source of topic routes for clients, speaking RocketMQ 4.x remoting
// (../shared/PROTOCOL.md) so that rocketmq-client-go works unchanged.
//
// Its state is in memory only and rebuilt from broker registrations. Table
// holds it and derives everything from the latest registration of each
// broker address: it is pure (no goroutines, no network, no clock; time is
// an argument), so tests drive liveness with a fake clock. Server puts a
// Table behind a remoting.Server and removes dead registrations on a ticker.
//
// # Liveness
//
// Brokers send REGISTER_BROKER every 30 s. A registration is live while its
// last renewal is at most BrokerTimeout old (120 s by default); it is also
// removed when the connection it last arrived on closes, and by
// UNREGISTER_BROKER. Routes only ever contain live brokers.
//
// # Requests
//
//	103 REGISTER_BROKER     ext brokerName, brokerAddr, clusterName, haServerAddr,
//	                        brokerId, compressed=false, bodyCrc32; JSON body (see
//	                        NewRegisterBrokerRequest). → 0, ext masterAddr and
//	                        haServerAddr of the broker name's leader (followers);
//	                        1 with a remark for a bad registration.
//	104 UNREGISTER_BROKER   ext clusterName, brokerAddr, brokerName, brokerId → 0.
//	105 GET_ROUTEINFO_BY_TOPIC  ext topic → 0 + RouteData JSON;
//	                        17 TOPIC_NOT_EXIST when no live broker routes it.
//	106 GET_BROKER_CLUSTER_INFO → 0 + ClusterInfo JSON:
//	                        {"brokerAddrTable":{name:{"cluster","brokerName",
//	                        "brokerAddrs"}},"clusterAddrTable":{cluster:[names]}}
//	206 GET_ALL_TOPIC_LIST_FROM_NAMESERVER → 0 + {"topicList":[...]} (sorted).
//	216 DELETE_TOPIC_IN_NAMESRV ext topic[, clusterName] → 0; loopback peers only.
//
// Other state-changing requests (PUT_KV_CONFIG 100, DELETE_KV_CONFIG 102,
// WIPE/ADD_WRITE_PERM_OF_BROKER 205/327, REGISTER_TOPIC_IN_NAMESRV 217,
// UPDATE_NAMESRV_CONFIG 318, and GET_NAMESRV_CONFIG 319) get 16
// NO_PERMISSION from non-loopback peers (the CVE-2023-37582 class, until
// ACLs exist) and 3 REQUEST_CODE_NOT_SUPPORTED from loopback ones; every
// other code gets 3 with a remark naming it.
//
// # Route JSON
//
// rocketmq-client-go reads a route with gjson, but cuts each "brokerAddrs"
// object apart by hand (strip the braces, split on ',', split at the first
// ':', delete '"'). So routes are written without any whitespace, with
// quoted integer keys, "brokerAddrs" always present ({} at least), arrays
// never null, and everything sorted:
//
//	{"orderTopicConf":"","queueDatas":[{"brokerName":"b1","readQueueNums":4,
//	"writeQueueNums":4,"perm":6,"topicSynFlag":0}],"brokerDatas":[{"cluster":"c1",
//	"brokerName":"b1","brokerAddrs":{"0":"127.0.0.1:10911","1":"127.0.0.1:10921"}}]}
//
// Fields after these three are Strata's extensions (RouteData.Extra),
// which standard clients ignore. Tier readers are ordinary members of a
// broker name, with ids of 1 and up.
//
// # Tier bounds (read routing)
//
// A leader with a cold tier sends, in its registration's Extra
// (RegistrationExtra), the hot-tier start of each queue that has messages
// only in the cold tier below it:
//
//	{"tierBounds":{"<topic>":{"<queueId>":<hotStart>,...},...}}
//
// The Table keeps them by topic with the registration, and the route of a
// topic gets them, for each of its broker names whose leader (id 0) is
// live and reported some, as the extra field
//
//	"tierBounds":{"<brokerName>":{"<queueId>":<hotStart>,...},...}
//
// (sorted by name and numerically by queue id; absent when there are none;
// DecodeRouteTierBounds reads it). Offsets below a queue's hot start are
// cold; a client may read them from a tier reader. Bounds leave routes with
// their leader's registration (expiry, UNREGISTER_BROKER, connection
// close), and a registration replaces them. Followers' and readers' bounds
// are ignored; a leader's that do not decode are ignored with a warning
// (the registration response's remark), the registration stands. Any
// RouteExtender's fields come besides them.
package namesrv
