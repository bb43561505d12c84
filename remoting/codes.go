package remoting

import "strconv"

// Request codes (Command.Code of a request). Values are Java RocketMQ 4.x
// RequestCode; PROTOCOL.md §2.2 lists the headers and bodies. The constants
// are typed int16, the type of Command.Code, so they compare and assign
// without conversions; RequestCodeName gives their names for logs.
const (
	// ReqSendMessage stores one message; long header names (PROTOCOL.md §2.3).
	ReqSendMessage int16 = 10
	// ReqPullMessage reads messages from a consume queue, possibly long-polling.
	ReqPullMessage int16 = 11
	// ReqQueryMessage looks messages up by key in a time range (admin tools).
	ReqQueryMessage int16 = 12
	// ReqQueryConsumerOffset returns a group's stored offset for one queue.
	ReqQueryConsumerOffset int16 = 14
	// ReqGetAllConsumerOffset returns every group's offsets (followers
	// copy them from their leader).
	ReqGetAllConsumerOffset int16 = 43
	// ReqUpdateConsumerOffset stores a group's offset; clients send it oneway-style.
	ReqUpdateConsumerOffset int16 = 15
	// ReqUpdateAndCreateTopic creates or updates a topic on a broker.
	ReqUpdateAndCreateTopic int16 = 17
	// ReqGetAllTopicConfig returns every topic config of a broker (followers, name servers).
	ReqGetAllTopicConfig int16 = 21
	// ReqUpdateBrokerConfig changes broker settings at run time.
	ReqUpdateBrokerConfig int16 = 25
	// ReqGetBrokerConfig returns the broker settings.
	ReqGetBrokerConfig int16 = 26
	// ReqSearchOffsetByTimestamp finds the queue offset of a store time.
	ReqSearchOffsetByTimestamp int16 = 29
	// ReqGetMaxOffset returns a queue's next offset to be written.
	ReqGetMaxOffset int16 = 30
	// ReqGetMinOffset returns a queue's smallest readable offset.
	ReqGetMinOffset int16 = 31
	// ReqGetEarliestMsgStoreTime returns the store time of a queue's oldest message.
	ReqGetEarliestMsgStoreTime int16 = 32
	// ReqViewMessageByID returns the message at a commit-log offset.
	ReqViewMessageByID int16 = 33
	// ReqHeartBeat registers a client's producer and consumer groups (JSON body, PROTOCOL.md §6).
	ReqHeartBeat int16 = 34
	// ReqUnregisterClient removes a client's groups; the Go client never sends it.
	ReqUnregisterClient int16 = 35
	// ReqConsumerSendMsgBack re-stores a failed message into the group's retry topic.
	ReqConsumerSendMsgBack int16 = 36
	// ReqEndTransaction commits or rolls back a half message (oneway-style).
	ReqEndTransaction int16 = 37
	// ReqGetConsumerListByGroup returns the client ids of a consumer group.
	ReqGetConsumerListByGroup int16 = 38
	// ReqCheckTransactionState asks a producer (broker to client) for a half message's outcome.
	ReqCheckTransactionState int16 = 39
	// ReqNotifyConsumerIDsChanged tells consumers (broker to client) to rebalance.
	ReqNotifyConsumerIDsChanged int16 = 40
	// ReqLockBatchMQ locks queues for an orderly consumer.
	ReqLockBatchMQ int16 = 41
	// ReqUnlockBatchMQ releases queue locks.
	ReqUnlockBatchMQ int16 = 42
	// ReqPutKVConfig stores a name-server key/value entry.
	ReqPutKVConfig int16 = 100
	// ReqGetKVConfig reads a name-server key/value entry.
	ReqGetKVConfig int16 = 101
	// ReqRegisterBroker registers a broker and its topics with a name server.
	ReqRegisterBroker int16 = 103
	// ReqUnregisterBroker removes a broker from a name server.
	ReqUnregisterBroker int16 = 104
	// ReqGetRouteInfoByTopic returns a topic's route from a name server (PROTOCOL.md §5).
	ReqGetRouteInfoByTopic int16 = 105
	// ReqGetBrokerClusterInfo returns the clusters and brokers a name server knows.
	ReqGetBrokerClusterInfo int16 = 106
	// ReqGetAllTopicListFromNameServer returns every topic a name server knows.
	ReqGetAllTopicListFromNameServer int16 = 206
	// ReqGetTierStatus is a Strata extension: a broker's cold-tier status
	// (JSON body). Codes from 30000 are Strata's own; RocketMQ uses none.
	ReqGetTierStatus int16 = 30001
	// ReqGetReplicationStatus is a Strata extension: a broker's
	// replication state (role, log end, followers and their lag) as JSON.
	ReqGetReplicationStatus int16 = 30002
	// ReqControllerHeartbeat is a Strata extension: a broker group
	// replica's report to the name servers' failover controller (JSON
	// body); the answer names the group's epoch and leader.
	ReqControllerHeartbeat int16 = 30010
	// ReqDeleteTopicInBroker deletes a topic on a broker.
	ReqDeleteTopicInBroker int16 = 215
	// ReqDeleteTopicInNameSrv deletes a topic's routes on a name server.
	ReqDeleteTopicInNameSrv int16 = 216
	// ReqResetConsumerClientOffset tells consumers (broker to client) to reset their offsets.
	ReqResetConsumerClientOffset int16 = 220
	// ReqGetConsumerStatusFromClient asks a consumer (broker to client) for its offsets.
	ReqGetConsumerStatusFromClient int16 = 221
	// ReqGetConsumerRunningInfo asks a consumer (broker to client) for its running state.
	ReqGetConsumerRunningInfo int16 = 307
	// ReqConsumeMessageDirectly asks a consumer (broker to client) to consume one message.
	ReqConsumeMessageDirectly int16 = 309
	// ReqSendMessageV2 is ReqSendMessage with short header names a..n; Java
	// clients send it, the Go client never does.
	ReqSendMessageV2 int16 = 310
	// ReqSendBatchMessage stores several messages of one topic (short header names).
	ReqSendBatchMessage int16 = 320
)

// Response codes (Command.Code of a response). Values are Java RocketMQ 4.x
// ResponseCode; PROTOCOL.md §2.1 says how the Go client reacts to each.
const (
	// RespSuccess means the request succeeded.
	RespSuccess int16 = 0
	// RespSystemError is a generic failure; the remark says why. Producers retry
	// a send that fails with it on another queue.
	RespSystemError int16 = 1
	// RespSystemBusy means the server is overloaded.
	RespSystemBusy int16 = 2
	// RespRequestCodeNotSupported answers a request code the server does not implement.
	RespRequestCodeNotSupported int16 = 3
	// RespFlushDiskTimeout: the message was stored but not flushed in time.
	RespFlushDiskTimeout int16 = 10
	// RespSlaveNotAvailable: the message was stored but no replica was reachable.
	RespSlaveNotAvailable int16 = 11
	// RespFlushSlaveTimeout: the message was stored but a replica did not ack in time.
	RespFlushSlaveTimeout int16 = 12
	// RespMessageIllegal rejects a malformed or oversized message.
	RespMessageIllegal int16 = 13
	// RespServiceNotAvailable: the server cannot serve the request now (shutting
	// down, wrong role, disk full); producers retry elsewhere.
	RespServiceNotAvailable int16 = 14
	// RespVersionNotSupported rejects a client version.
	RespVersionNotSupported int16 = 15
	// RespNoPermission: the topic or the credentials forbid the operation.
	RespNoPermission int16 = 16
	// RespTopicNotExist: the topic is unknown.
	RespTopicNotExist int16 = 17
	// RespTopicExistAlready: the topic already exists.
	RespTopicExistAlready int16 = 18
	// RespPullNotFound: no new message at the pull offset.
	RespPullNotFound int16 = 19
	// RespPullRetryImmediately: messages were scanned but none matched the filter.
	RespPullRetryImmediately int16 = 20
	// RespPullOffsetMoved: the pull offset is outside the queue; nextBeginOffset says where to go.
	RespPullOffsetMoved int16 = 21
	// RespQueryNotFound: no stored consumer offset (or no message found by a query).
	RespQueryNotFound int16 = 22
	// RespSubscriptionParseFailed: the subscription expression is invalid.
	RespSubscriptionParseFailed int16 = 23
	// RespSubscriptionNotExist: the group has no subscription for the topic.
	RespSubscriptionNotExist int16 = 24
	// RespSubscriptionNotLatest: the pull carried an outdated subscription version.
	RespSubscriptionNotLatest int16 = 25
	// RespSubscriptionGroupNotExist: the consumer group is unknown.
	RespSubscriptionGroupNotExist int16 = 26
)

// Bits of PULL_MESSAGE's sysFlag header field (Java PullSysFlag).
const (
	// PullFlagCommitOffset: commitOffset carries an offset the broker should store.
	PullFlagCommitOffset int32 = 1 << 0
	// PullFlagSuspend: the broker may hold the request until a message arrives (long polling).
	PullFlagSuspend int32 = 1 << 1
	// PullFlagSubscription: filter with this request's subscription expression
	// instead of the one registered by HEART_BEAT.
	PullFlagSubscription int32 = 1 << 2
	// PullFlagClassFilter: class-based filtering (unsupported by Strata).
	PullFlagClassFilter int32 = 1 << 3
	// PullFlagLitePull: sent by Java lite pull consumers; never set by the Go client.
	PullFlagLitePull int32 = 1 << 4
)

// Permission bits of a topic or broker (Java PermName; PROTOCOL.md §5).
const (
	// PermInherit marks a topic config inherited from a default topic.
	PermInherit int32 = 1 << 0
	// PermWrite allows producing.
	PermWrite int32 = 1 << 1
	// PermRead allows consuming.
	PermRead int32 = 1 << 2
	// PermPriority marks a priority topic (unused by the Go client).
	PermPriority int32 = 1 << 3
	// PermReadWrite is the permission of a normal topic.
	PermReadWrite = PermRead | PermWrite
)

var requestCodeNames = map[int16]string{
	ReqGetTierStatus:                 "STRATA_GET_TIER_STATUS",
	ReqGetReplicationStatus:          "STRATA_GET_REPLICATION_STATUS",
	ReqControllerHeartbeat:           "STRATA_CONTROLLER_HEARTBEAT",
	ReqSendMessage:                   "SEND_MESSAGE",
	ReqPullMessage:                   "PULL_MESSAGE",
	ReqQueryMessage:                  "QUERY_MESSAGE",
	ReqQueryConsumerOffset:           "QUERY_CONSUMER_OFFSET",
	ReqGetAllConsumerOffset:          "GET_ALL_CONSUMER_OFFSET",
	ReqUpdateConsumerOffset:          "UPDATE_CONSUMER_OFFSET",
	ReqUpdateAndCreateTopic:          "UPDATE_AND_CREATE_TOPIC",
	ReqGetAllTopicConfig:             "GET_ALL_TOPIC_CONFIG",
	ReqUpdateBrokerConfig:            "UPDATE_BROKER_CONFIG",
	ReqGetBrokerConfig:               "GET_BROKER_CONFIG",
	ReqSearchOffsetByTimestamp:       "SEARCH_OFFSET_BY_TIMESTAMP",
	ReqGetMaxOffset:                  "GET_MAX_OFFSET",
	ReqGetMinOffset:                  "GET_MIN_OFFSET",
	ReqGetEarliestMsgStoreTime:       "GET_EARLIEST_MSG_STORETIME",
	ReqViewMessageByID:               "VIEW_MESSAGE_BY_ID",
	ReqHeartBeat:                     "HEART_BEAT",
	ReqUnregisterClient:              "UNREGISTER_CLIENT",
	ReqConsumerSendMsgBack:           "CONSUMER_SEND_MSG_BACK",
	ReqEndTransaction:                "END_TRANSACTION",
	ReqGetConsumerListByGroup:        "GET_CONSUMER_LIST_BY_GROUP",
	ReqCheckTransactionState:         "CHECK_TRANSACTION_STATE",
	ReqNotifyConsumerIDsChanged:      "NOTIFY_CONSUMER_IDS_CHANGED",
	ReqLockBatchMQ:                   "LOCK_BATCH_MQ",
	ReqUnlockBatchMQ:                 "UNLOCK_BATCH_MQ",
	ReqPutKVConfig:                   "PUT_KV_CONFIG",
	ReqGetKVConfig:                   "GET_KV_CONFIG",
	ReqRegisterBroker:                "REGISTER_BROKER",
	ReqUnregisterBroker:              "UNREGISTER_BROKER",
	ReqGetRouteInfoByTopic:           "GET_ROUTEINFO_BY_TOPIC",
	ReqGetBrokerClusterInfo:          "GET_BROKER_CLUSTER_INFO",
	ReqGetAllTopicListFromNameServer: "GET_ALL_TOPIC_LIST_FROM_NAMESERVER",
	ReqDeleteTopicInBroker:           "DELETE_TOPIC_IN_BROKER",
	ReqDeleteTopicInNameSrv:          "DELETE_TOPIC_IN_NAMESRV",
	ReqResetConsumerClientOffset:     "RESET_CONSUMER_CLIENT_OFFSET",
	ReqGetConsumerStatusFromClient:   "GET_CONSUMER_STATUS_FROM_CLIENT",
	ReqGetConsumerRunningInfo:        "GET_CONSUMER_RUNNING_INFO",
	ReqConsumeMessageDirectly:        "CONSUME_MESSAGE_DIRECTLY",
	ReqSendMessageV2:                 "SEND_MESSAGE_V2",
	ReqSendBatchMessage:              "SEND_BATCH_MESSAGE",
}

var responseCodeNames = map[int16]string{
	RespSuccess:                   "SUCCESS",
	RespSystemError:               "SYSTEM_ERROR",
	RespSystemBusy:                "SYSTEM_BUSY",
	RespRequestCodeNotSupported:   "REQUEST_CODE_NOT_SUPPORTED",
	RespFlushDiskTimeout:          "FLUSH_DISK_TIMEOUT",
	RespSlaveNotAvailable:         "SLAVE_NOT_AVAILABLE",
	RespFlushSlaveTimeout:         "FLUSH_SLAVE_TIMEOUT",
	RespMessageIllegal:            "MESSAGE_ILLEGAL",
	RespServiceNotAvailable:       "SERVICE_NOT_AVAILABLE",
	RespVersionNotSupported:       "VERSION_NOT_SUPPORTED",
	RespNoPermission:              "NO_PERMISSION",
	RespTopicNotExist:             "TOPIC_NOT_EXIST",
	RespTopicExistAlready:         "TOPIC_EXIST_ALREADY",
	RespPullNotFound:              "PULL_NOT_FOUND",
	RespPullRetryImmediately:      "PULL_RETRY_IMMEDIATELY",
	RespPullOffsetMoved:           "PULL_OFFSET_MOVED",
	RespQueryNotFound:             "QUERY_NOT_FOUND",
	RespSubscriptionParseFailed:   "SUBSCRIPTION_PARSE_FAILED",
	RespSubscriptionNotExist:      "SUBSCRIPTION_NOT_EXIST",
	RespSubscriptionNotLatest:     "SUBSCRIPTION_NOT_LATEST",
	RespSubscriptionGroupNotExist: "SUBSCRIPTION_GROUP_NOT_EXIST",
}

// RequestCodeName returns the Java name of a request code ("SEND_MESSAGE"),
// or the number in decimal if the code is not one of the Req constants.
func RequestCodeName(code int16) string {
	if n, ok := requestCodeNames[code]; ok {
		return n
	}
	return strconv.Itoa(int(code))
}

// ResponseCodeName returns the Java name of a response code ("PULL_NOT_FOUND"),
// or the number in decimal if the code is not one of the Resp constants.
func ResponseCodeName(code int16) string {
	if n, ok := responseCodeNames[code]; ok {
		return n
	}
	return strconv.Itoa(int(code))
}
