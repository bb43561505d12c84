package namesrv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"net"
	"strconv"
	"unicode/utf8"

	"github.com/strata-mq/strata/remoting"
)

var (
	// ErrBadRegistration is wrapped by the errors of NewRegisterBrokerRequest,
	// DecodeRegisterBrokerRequest and Table.Register for a registration that
	// breaks a rule of Registration or TopicConfig; the text names the field.
	ErrBadRegistration = errors.New("namesrv: bad registration")
	// ErrRejected is wrapped by the errors of the Decode*Response helpers
	// when the name server answered with a code other than SUCCESS; the
	// text carries the code's name and the remark.
	ErrRejected = errors.New("namesrv: request rejected")
	// ErrTopicNotExist is returned by DecodeRouteResponse when the name
	// server knows no live broker serving the topic (code TOPIC_NOT_EXIST).
	ErrTopicNotExist = errors.New("namesrv: topic does not exist")
)

// Limits a registration must respect.
const (
	// MaxNameLen bounds cluster and broker names.
	MaxNameLen = 127
	// MaxTopicLen bounds topic names: the stored message format gives the
	// topic a 1-byte length (PROTOCOL.md §4.1).
	MaxTopicLen = 255
	// MaxQueueNums bounds a topic's read and write queue counts. Clients
	// build one queue object per queue id, so an absurd count from a broken
	// broker would exhaust them; Java brokers default to 4 to 16 queues.
	MaxQueueNums = 1024
)

// TopicConfig is one topic as a broker registers it (Java TopicConfig).
type TopicConfig struct {
	// ReadQueueNums and WriteQueueNums are the queue counts consumers and
	// producers use, 0..MaxQueueNums.
	ReadQueueNums  int
	WriteQueueNums int
	// Perm is the permission bits, remoting.PermRead|PermWrite (6) for a
	// normal topic; 0..15.
	Perm int
	// TopicSysFlag is the topic's system flags (Java TopicSysFlag), non-negative
	// int32; routes carry it as "topicSynFlag".
	TopicSysFlag int
	// Order marks an ordered topic. It is recorded, not routed: Java name
	// servers fill orderTopicConf from their KV store, which Strata lacks.
	Order bool
}

// DataVersion is a broker's topic-config version (Java DataVersion): it
// changes whenever the broker's topics change.
type DataVersion struct {
	// Timestamp is in milliseconds since the epoch.
	Timestamp int64 `json:"timestamp"`
	Counter   int64 `json:"counter"`
}

// Registration is what a broker tells a name server with REGISTER_BROKER,
// every 30 s (Java BrokerController.registerBrokerAll). Leaders, followers
// and tier readers all register; each broker name has at most one live
// member per BrokerID.
type Registration struct {
	// ClusterName and BrokerName: 1..MaxNameLen bytes of letters, digits,
	// '-', '_' and '.'.
	ClusterName string
	BrokerName  string
	// BrokerAddr is where clients reach this broker, "ip:port", as routes
	// give it to clients (PROTOCOL.md §5); it identifies the registration.
	BrokerAddr string
	// BrokerID is MasterID (0) for the leader, 1 and up for followers and
	// tier readers.
	BrokerID int64
	// HAServerAddr is the leader's replication address, "ip:port"; followers
	// learn it from the REGISTER_BROKER response. Optional.
	HAServerAddr string
	// Topics is the broker's topic table, by topic name: 1..MaxTopicLen
	// bytes of letters, digits, '%', '|', '-' and '_' (Java TopicValidator).
	Topics map[string]TopicConfig
	// DataVersion is the version of Topics.
	DataVersion DataVersion
	// Extra is Strata's additions to the registration, a JSON value that
	// travels as the body's "strata" field, which Java name servers ignore.
	// Empty or null means none. Strata brokers send a RegistrationExtra
	// (RegistrationExtra.Encode): a leader's "tierBounds" go into the routes
	// of its topics. Any valid JSON is accepted and stored compacted (and
	// handed to the RouteExtender); tier bounds that do not decode are
	// ignored with a RegisterResult.Warning, the registration stands.
	Extra json.RawMessage
}

// RegisterResult is what a name server answers a registration with.
type RegisterResult struct {
	// MasterAddr is the address of the broker name's live leader, for a
	// follower or tier reader; empty for a leader or when no leader is live.
	MasterAddr string
	// HAServerAddr is that leader's HAServerAddr.
	HAServerAddr string
	// Warning, when not empty, says what part of an accepted registration
	// the name server ignored: tier bounds in Extra that do not decode
	// (DecodeRegistrationExtra). It travels as the response's remark.
	Warning string
}

// Wire shapes of REGISTER_BROKER (Java RegisterBrokerRequestHeader,
// RegisterBrokerBody, TopicConfigSerializeWrapper, TopicConfig).
const (
	extBrokerName   = "brokerName"
	extBrokerAddr   = "brokerAddr"
	extClusterName  = "clusterName"
	extHAServerAddr = "haServerAddr"
	extBrokerID     = "brokerId"
	extCompressed   = "compressed"
	extBodyCRC32    = "bodyCrc32"
	extMasterAddr   = "masterAddr"
	extTopic        = "topic"
)

type registerBody struct {
	TopicConfigSerializeWrapper topicConfigWrapper `json:"topicConfigSerializeWrapper"`
	FilterServerList            []string           `json:"filterServerList"`
	Strata                      json.RawMessage    `json:"strata,omitempty"`
}

type topicConfigWrapper struct {
	TopicConfigTable map[string]topicConfigJSON `json:"topicConfigTable"`
	DataVersion      DataVersion                `json:"dataVersion"`
}

type topicConfigJSON struct {
	TopicName       string `json:"topicName"`
	ReadQueueNums   int    `json:"readQueueNums"`
	WriteQueueNums  int    `json:"writeQueueNums"`
	Perm            int    `json:"perm"`
	TopicFilterType string `json:"topicFilterType"`
	TopicSysFlag    int    `json:"topicSysFlag"`
	Order           bool   `json:"order"`
}

// bodyCRC32 is Java UtilAll.crc32: IEEE CRC-32 with the sign bit cleared.
func bodyCRC32(b []byte) int32 {
	return int32(crc32.ChecksumIEEE(b) & 0x7FFFFFFF)
}

// NewRegisterBrokerRequest builds the REGISTER_BROKER (103) request for r,
// after checking it as the name server will.
//
// Header (extFields): brokerName, brokerAddr, clusterName, haServerAddr,
// brokerId, compressed=false, bodyCrc32 (CRC-32 of the body with the sign
// bit cleared, as Java's UtilAll.crc32). Body, without whitespace, topics
// sorted by name:
//
//	{"topicConfigSerializeWrapper":{"topicConfigTable":{"T":{"topicName":"T",
//	"readQueueNums":4,"writeQueueNums":4,"perm":6,"topicFilterType":"SINGLE_TAG",
//	"topicSysFlag":0,"order":false}},"dataVersion":{"timestamp":1700000000000,
//	"counter":1}},"filterServerList":[],"strata":<Extra>}
//
// "strata" is omitted when Extra is empty.
func NewRegisterBrokerRequest(r Registration) (*remoting.Command, error) {
	extra, err := checkRegistration(&r)
	if err != nil {
		return nil, err
	}
	body := registerBody{
		TopicConfigSerializeWrapper: topicConfigWrapper{
			TopicConfigTable: make(map[string]topicConfigJSON, len(r.Topics)),
			DataVersion:      r.DataVersion,
		},
		FilterServerList: []string{},
		Strata:           extra,
	}
	for name, tc := range r.Topics {
		body.TopicConfigSerializeWrapper.TopicConfigTable[name] = topicConfigJSON{
			TopicName:       name,
			ReadQueueNums:   tc.ReadQueueNums,
			WriteQueueNums:  tc.WriteQueueNums,
			Perm:            tc.Perm,
			TopicFilterType: "SINGLE_TAG",
			TopicSysFlag:    tc.TopicSysFlag,
			Order:           tc.Order,
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("namesrv: encoding registration: %w", err)
	}
	ext := map[string]string{
		extBrokerName:   r.BrokerName,
		extBrokerAddr:   r.BrokerAddr,
		extClusterName:  r.ClusterName,
		extHAServerAddr: r.HAServerAddr,
		extBrokerID:     strconv.FormatInt(r.BrokerID, 10),
		extCompressed:   "false",
		extBodyCRC32:    strconv.FormatInt(int64(bodyCRC32(b)), 10),
	}
	return remoting.NewRequest(remoting.ReqRegisterBroker, ext, b), nil
}

// DecodeRegisterBrokerRequest parses a REGISTER_BROKER request as
// NewRegisterBrokerRequest builds it and checks it. A bodyCrc32 of 0 or
// absent is not checked (as in Java); compressed=true (Java's binary
// compressed body) is refused; an empty body registers no topics; unknown
// JSON fields are ignored. Errors wrap ErrBadRegistration.
func DecodeRegisterBrokerRequest(req *remoting.Command) (Registration, error) {
	if req.Code != remoting.ReqRegisterBroker {
		return Registration{}, fmt.Errorf("%w: request code %s, want REGISTER_BROKER", ErrBadRegistration, remoting.RequestCodeName(req.Code))
	}
	id, err := req.ExtInt64(extBrokerID)
	if err != nil {
		return Registration{}, fmt.Errorf("%w: %w", ErrBadRegistration, err)
	}
	r := Registration{
		ClusterName:  req.Ext(extClusterName),
		BrokerName:   req.Ext(extBrokerName),
		BrokerAddr:   req.Ext(extBrokerAddr),
		BrokerID:     id,
		HAServerAddr: req.Ext(extHAServerAddr),
	}
	if c := req.Ext(extCompressed); c == "true" {
		return Registration{}, fmt.Errorf("%w: compressed registration bodies are not supported; send compressed=false", ErrBadRegistration)
	}
	if s := req.Ext(extBodyCRC32); s != "" {
		want, err := req.ExtInt32(extBodyCRC32)
		if err != nil {
			return Registration{}, fmt.Errorf("%w: %w", ErrBadRegistration, err)
		}
		if got := bodyCRC32(req.Body); want != 0 && got != want {
			return Registration{}, fmt.Errorf("%w: body CRC32 is %d, header says %d", ErrBadRegistration, got, want)
		}
	}
	if len(req.Body) > 0 {
		var body registerBody
		if err := json.Unmarshal(req.Body, &body); err != nil {
			return Registration{}, fmt.Errorf("%w: body: %w", ErrBadRegistration, err)
		}
		w := body.TopicConfigSerializeWrapper
		r.DataVersion = w.DataVersion
		if len(w.TopicConfigTable) > 0 {
			r.Topics = make(map[string]TopicConfig, len(w.TopicConfigTable))
		}
		for name, tc := range w.TopicConfigTable {
			if tc.TopicName != "" && tc.TopicName != name {
				return Registration{}, fmt.Errorf("%w: topicConfigTable[%q] has topicName %q", ErrBadRegistration, name, tc.TopicName)
			}
			r.Topics[name] = TopicConfig{
				ReadQueueNums:  tc.ReadQueueNums,
				WriteQueueNums: tc.WriteQueueNums,
				Perm:           tc.Perm,
				TopicSysFlag:   tc.TopicSysFlag,
				Order:          tc.Order,
			}
		}
		r.Extra = body.Strata
	}
	extra, err := checkRegistration(&r)
	if err != nil {
		return Registration{}, err
	}
	r.Extra = extra
	return r, nil
}

// NewRegisterBrokerResponse builds the response to a REGISTER_BROKER
// request: SUCCESS with extFields masterAddr and haServerAddr when set
// (Java RegisterBrokerResponseHeader), and res.Warning as the remark.
func NewRegisterBrokerResponse(req *remoting.Command, res RegisterResult) *remoting.Command {
	resp := remoting.NewResponse(req, remoting.RespSuccess, res.Warning)
	if res.MasterAddr != "" {
		resp.SetExt(extMasterAddr, res.MasterAddr)
	}
	if res.HAServerAddr != "" {
		resp.SetExt(extHAServerAddr, res.HAServerAddr)
	}
	return resp
}

// DecodeRegisterBrokerResponse reads a REGISTER_BROKER response: the result
// (the remark as Warning) on SUCCESS, else an error wrapping ErrRejected
// with the code and remark.
func DecodeRegisterBrokerResponse(resp *remoting.Command) (RegisterResult, error) {
	if err := checkSuccess(resp); err != nil {
		return RegisterResult{}, err
	}
	return RegisterResult{MasterAddr: resp.Ext(extMasterAddr), HAServerAddr: resp.Ext(extHAServerAddr), Warning: resp.Remark}, nil
}

// NewUnregisterBrokerRequest builds the UNREGISTER_BROKER (104) request a
// broker sends when it stops: extFields clusterName, brokerAddr, brokerName,
// brokerId (Java UnRegisterBrokerRequestHeader). The name server answers
// SUCCESS whether or not the broker was registered.
func NewUnregisterBrokerRequest(clusterName, brokerAddr, brokerName string, brokerID int64) *remoting.Command {
	return remoting.NewRequest(remoting.ReqUnregisterBroker, map[string]string{
		extClusterName: clusterName,
		extBrokerAddr:  brokerAddr,
		extBrokerName:  brokerName,
		extBrokerID:    strconv.FormatInt(brokerID, 10),
	}, nil)
}

// NewGetRouteInfoRequest builds the GET_ROUTEINFO_BY_TOPIC (105) request
// for topic (extFields topic), as rocketmq-client-go sends it.
func NewGetRouteInfoRequest(topic string) *remoting.Command {
	return remoting.NewRequest(remoting.ReqGetRouteInfoByTopic, map[string]string{extTopic: topic}, nil)
}

// DecodeRouteResponse reads a GET_ROUTEINFO_BY_TOPIC response as
// rocketmq-client-go does: SUCCESS with a body is a route (DecodeRouteData),
// TOPIC_NOT_EXIST is ErrTopicNotExist, SUCCESS without a body or any other
// code an error wrapping ErrRejected.
func DecodeRouteResponse(resp *remoting.Command) (RouteData, error) {
	if resp.Code == remoting.RespTopicNotExist {
		return RouteData{}, fmt.Errorf("%w: %s", ErrTopicNotExist, resp.Remark)
	}
	if err := checkSuccess(resp); err != nil {
		return RouteData{}, err
	}
	if len(resp.Body) == 0 {
		return RouteData{}, fmt.Errorf("%w: SUCCESS without a route body", ErrRejected)
	}
	return DecodeRouteData(resp.Body)
}

func checkSuccess(resp *remoting.Command) error {
	if resp.Code == remoting.RespSuccess {
		return nil
	}
	return fmt.Errorf("%w: %s (%d): %s", ErrRejected, remoting.ResponseCodeName(resp.Code), resp.Code, resp.Remark)
}

// checkRegistration enforces the rules documented on Registration and
// TopicConfig, and returns r.Extra compacted (nil for empty or null).
func checkRegistration(r *Registration) (json.RawMessage, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadRegistration, fmt.Sprintf(format, args...))
	}
	if err := checkName(r.ClusterName); err != nil {
		return nil, bad("clusterName %q: %v", r.ClusterName, err)
	}
	if err := checkName(r.BrokerName); err != nil {
		return nil, bad("brokerName %q: %v", r.BrokerName, err)
	}
	if err := checkAddr(r.BrokerAddr); err != nil {
		return nil, bad("brokerAddr %q: %v", r.BrokerAddr, err)
	}
	if r.HAServerAddr != "" {
		if err := checkAddr(r.HAServerAddr); err != nil {
			return nil, bad("haServerAddr %q: %v", r.HAServerAddr, err)
		}
	}
	if r.BrokerID < 0 {
		return nil, bad("brokerId %d is negative", r.BrokerID)
	}
	for name, tc := range r.Topics {
		if err := checkTopic(name); err != nil {
			return nil, bad("topic %q: %v", name, err)
		}
		switch {
		case tc.ReadQueueNums < 0 || tc.ReadQueueNums > MaxQueueNums:
			return nil, bad("topic %q: readQueueNums %d is outside 0..%d", name, tc.ReadQueueNums, MaxQueueNums)
		case tc.WriteQueueNums < 0 || tc.WriteQueueNums > MaxQueueNums:
			return nil, bad("topic %q: writeQueueNums %d is outside 0..%d", name, tc.WriteQueueNums, MaxQueueNums)
		case tc.Perm < 0 || tc.Perm > 15:
			return nil, bad("topic %q: perm %d is outside 0..15", name, tc.Perm)
		case tc.TopicSysFlag < 0 || tc.TopicSysFlag > math.MaxInt32:
			return nil, bad("topic %q: topicSysFlag %d is outside 0..%d", name, tc.TopicSysFlag, math.MaxInt32)
		}
	}
	trimmed := bytes.TrimSpace(r.Extra)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, trimmed); err != nil {
		return nil, bad("extra is not valid JSON: %v", err)
	}
	return json.RawMessage(buf.Bytes()), nil
}

func checkName(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("longer than %d bytes", MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("byte %q at %d is not a letter, digit, '-', '_' or '.'", c, i)
		}
	}
	return nil
}

func checkTopic(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > MaxTopicLen {
		return fmt.Errorf("longer than %d bytes", MaxTopicLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '%' && c != '|' && c != '-' && c != '_' {
			return fmt.Errorf("byte %q at %d is not a letter, digit, '%%', '|', '-' or '_'", c, i)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// checkAddr accepts "host:port" with a numeric port 1..65535 and a host of
// letters, digits, '.', '-', '_', and for IPv6 "[...]" with ':' and '%'.
// The characters that rocketmq-client-go's hand parser of brokerAddrs would
// split on or strip ('"', ',', '{', '}', whitespace) can never appear.
func checkAddr(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not UTF-8")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("no host")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return fmt.Errorf("port %q is not 1..65535", port)
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; !isAlnum(c) && c != '.' && c != '-' && c != '_' && c != ':' && c != '%' {
			return fmt.Errorf("byte %q in host", c)
		}
	}
	return nil
}

// cloneRegistration returns a deep copy of r (Topics, Extra).
func cloneRegistration(r Registration) Registration {
	r.Topics = maps.Clone(r.Topics)
	r.Extra = bytes.Clone(r.Extra)
	return r
}
