package broker

import (
	"cmp"
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/strata-mq/strata/acl"
	"github.com/strata-mq/strata/remoting"
)

// Credentials are the access key and secret key a broker signs its own
// requests with (registration, a follower's or reader's requests to its
// leader, controller heartbeats) when the name servers or the leader check
// ACLs. The secret never leaves the process.
type Credentials struct {
	AccessKey, SecretKey string
}

// sign signs an outgoing request that is not signed yet (a reader forwards
// its clients' requests with their own signatures).
func (b *Broker) sign(req *remoting.Command) {
	cr := b.cfg.Credentials
	if cr.AccessKey == "" || cr.SecretKey == "" || req.ExtFields[remoting.FieldSignature] != "" {
		return
	}
	if req.ExtFields == nil {
		req.ExtFields = map[string]string{}
	}
	req.ExtFields[remoting.FieldSignature] = remoting.Signature(cr.AccessKey, cr.SecretKey, req.ExtFields, req.Body)
	req.ExtFields[remoting.FieldAccessKey] = cr.AccessKey
}

// authenticateFollower is the replication port's check of a follower's
// hello when ACLs are on: signed by an admin account (followers copy every
// topic). Nil without an ACL.
func (b *Broker) authenticateFollower() func(accessKey, signature string, fields map[string]string) error {
	if b.cfg.ACL == nil {
		return nil
	}
	return func(accessKey, signature string, fields map[string]string) error {
		return b.cfg.ACL.AuthenticateAdmin(accessKey, signature, fields, "replication hello")
	}
}

// signHello signs a follower's hello with the broker's credentials; nil
// without them.
func (b *Broker) signHello() func(fields map[string]string) (string, string) {
	cr := b.cfg.Credentials
	if cr.AccessKey == "" || cr.SecretKey == "" {
		return nil
	}
	return func(fields map[string]string) (string, string) {
		return cr.AccessKey, remoting.Signature(cr.AccessKey, cr.SecretKey, fields, nil)
	}
}

// dialOptions are the options of the broker's own connections (to name
// servers and its leader).
func (b *Broker) dialOptions() remoting.ConnOptions {
	return remoting.ConnOptions{Sign: b.sign, Logger: b.log, TLS: b.cfg.ClientTLS}
}

// need is one permission a request needs.
type need struct {
	group bool // a consumer group, else a topic
	name  string
	perm  acl.Perm
}

// Request classes for authorization.
const (
	authAny   = iota // any authenticated account
	authNeeds        // the permissions listed
	authAdmin        // an admin account
)

// authNeeds returns what req needs: authAny, authNeeds with the
// permissions, or authAdmin (every code not listed: what the broker does
// not know it does not let anyone but an admin try).
func authNeedsOf(req *remoting.Command) (int, []need) {
	topic, group := topicNeed, groupNeed
	switch req.Code {
	case remoting.ReqSendMessage, remoting.ReqSendMessageV2, remoting.ReqSendBatchMessage:
		t := req.Ext("topic")
		if req.Code != remoting.ReqSendMessage || t == "" {
			t = cmp.Or(req.Ext("b"), t)
		}
		return authNeeds, []need{topic(t, acl.Pub)}
	case remoting.ReqPullMessage, remoting.ReqQueryConsumerOffset, remoting.ReqUpdateConsumerOffset:
		return authNeeds, []need{topic(req.Ext("topic"), acl.Sub), group(req.Ext("consumerGroup"))}
	case remoting.ReqSearchOffsetByTimestamp, remoting.ReqGetMaxOffset, remoting.ReqGetMinOffset,
		remoting.ReqGetEarliestMsgStoreTime, remoting.ReqQueryMessage:
		return authNeeds, []need{topic(req.Ext("topic"), acl.Sub)}
	case remoting.ReqGetConsumerListByGroup:
		return authNeeds, []need{group(req.Ext("consumerGroup"))}
	case remoting.ReqLockBatchMQ, remoting.ReqUnlockBatchMQ:
		var body struct {
			ConsumerGroup string `json:"consumerGroup"`
		}
		if json.Unmarshal(req.Body, &body) != nil {
			return authAdmin, nil // unreadable: the handler's error is for admins only
		}
		return authNeeds, []need{group(body.ConsumerGroup)}
	case remoting.ReqHeartBeat:
		hb, err := ParseHeartbeat(req.Body)
		if err != nil {
			return authAny, nil // the handler refuses it
		}
		var ns []need
		for _, c := range hb.ConsumerDataSet {
			ns = append(ns, group(c.GroupName))
			for _, s := range c.SubscriptionDataSet {
				ns = append(ns, topic(s.Topic, acl.Sub))
			}
		}
		return authNeeds, ns
	case remoting.ReqConsumerSendMsgBack, remoting.ReqEndTransaction:
		// The group here; the record's topic in authorizeRecord.
		if req.Code == remoting.ReqEndTransaction {
			return authAny, nil
		}
		return authNeeds, []need{group(req.Ext("group"))}
	case remoting.ReqUnregisterClient, remoting.ReqGetReplicationStatus, remoting.ReqGetTierStatus:
		return authAny, nil
	}
	return authAdmin, nil
}

// topicNeed is perm on topic t; retry and dead-letter topics belong to
// their consumer group (SUB).
func topicNeed(t string, p acl.Perm) need {
	for _, pre := range []string{RetryTopicPrefix, DLQTopicPrefix} {
		if g, ok := strings.CutPrefix(t, pre); ok {
			return need{group: true, name: g, perm: acl.Sub}
		}
	}
	return need{name: t, perm: p}
}

func groupNeed(g string) need { return need{group: true, name: g, perm: acl.Sub} }

// checkNeeds refuses req unless acct holds every permission in needs.
func (b *Broker) checkNeeds(c *remoting.Conn, req *remoting.Command, acct *acl.Account, needs []need) *remoting.Command {
	for _, n := range needs {
		p, kind := acct.Topic(n.name), "topic"
		if n.group {
			p, kind = acct.Group(n.name), "group"
		}
		if p&n.perm == 0 {
			b.cfg.ACL.Denied(req, c.RemoteIP(), acct.AccessKey(), "no "+n.perm.String()+" permission on "+kind+" "+n.name)
			return errResponse(req, remoting.RespNoPermission, "%v: no %s permission on %s %s", acl.ErrDenied, n.perm, kind, n.name)
		}
	}
	return nil
}

// authorizeRecord checks, for a non-admin account, the requests whose
// permission depends on the record they name, read from the log: a
// send-back copies any message into the group's retry topic, so it needs
// SUB on the message's topic (and on its original one, for a retry copy);
// an end of transaction commits a half message, so it needs PUB on the
// topic it was sent to. It runs on the request's own goroutine (the read
// may reach the cold tier).
func (b *Broker) authorizeRecord(c *remoting.Conn, req *remoting.Command, acct *acl.Account) *remoting.Command {
	if acct == nil || acct.Admin() {
		return nil
	}
	field := "offset"
	switch req.Code {
	case remoting.ReqConsumerSendMsgBack:
	case remoting.ReqEndTransaction:
		field = "commitLogOffset"
	default:
		return nil
	}
	off, err := req.ExtInt64(field)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := b.readAt(ctx, off)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "no message at commit-log offset %d: %v", off, err)
	}
	m, err := remoting.DecodeMessageExt(rec)
	if err != nil {
		return errResponse(req, remoting.RespSystemError, "%v", err)
	}
	props := remoting.ParseProperties(m.Properties)
	var needs []need
	if req.Code == remoting.ReqEndTransaction {
		real := props[remoting.PropRealTopic]
		if m.Topic != TransHalfTopic || real == "" {
			return errResponse(req, remoting.RespNoPermission, "%v: no transaction at commit-log offset %d", acl.ErrDenied, off)
		}
		needs = append(needs, topicNeed(real, acl.Pub))
	} else {
		needs = append(needs, topicNeed(m.Topic, acl.Sub))
		if orig := props[propRetryTopic]; orig != "" && orig != m.Topic {
			needs = append(needs, topicNeed(orig, acl.Sub))
		}
	}
	return b.checkNeeds(c, req, acct, needs)
}

// authorize checks req against the ACL. It returns the account (nil with
// authentication off) and, when the request is refused, the response.
func (b *Broker) authorize(c *remoting.Conn, req *remoting.Command) (*acl.Account, *remoting.Command) {
	a := b.cfg.ACL
	if a == nil {
		return nil, nil
	}
	remote := c.RemoteIP()
	acct, err := a.Authenticate(req, remote)
	if err != nil {
		return nil, errResponse(req, remoting.RespNoPermission, "%v", err)
	}
	if acct.Admin() {
		return acct, nil
	}
	class, needs := authNeedsOf(req)
	switch class {
	case authAdmin:
		a.Denied(req, remote, acct.AccessKey(), "needs an admin account")
		return nil, errResponse(req, remoting.RespNoPermission, "%v", acl.ErrDenied)
	case authNeeds:
		if resp := b.checkNeeds(c, req, acct, needs); resp != nil {
			return nil, resp
		}
	}
	return acct, nil
}

// adminChange reports whether a successful response to req changed the
// broker's state as only an admin may (the audit log records each).
func adminChange(code int16) bool {
	switch code {
	case remoting.ReqUpdateAndCreateTopic, remoting.ReqDeleteTopicInBroker,
		remoting.ReqUpdateBrokerConfig, remoting.ReqPutKVConfig:
		return true
	}
	return false
}
