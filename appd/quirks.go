package appd

import (
	"encoding/json"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// This file holds the types that accept more than one form because the
// spec's versions (or its schema and its descriptions) disagree. Each also
// implements UnmarshalJSON/UnmarshalYAML so that code decoding with
// encoding/json or yaml.v3 accepts the same forms as Parse.

// StringList is mecVersion: an array of strings in MEC 010-2 v2, one
// comma-separated string in v3 ("3.1.1, 2.2.1"). Both decode to one entry
// per version.
type StringList []string

func (s *StringList) unmarshalTree(d *decoder, n *tnode, path string) {
	switch n.kind {
	case kindNull:
		*s = nil
	case kindList:
		var out []string
		d.decode(n, reflect.ValueOf(&out).Elem(), path)
		*s = out
	default:
		str, ok := d.stringValue(n, path)
		if !ok {
			return
		}
		parts := strings.Split(str, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		*s = parts
	}
}

func (s *StringList) UnmarshalJSON(b []byte) error     { return unmarshalJSONInto(b, s) }
func (s *StringList) UnmarshalYAML(n *yaml.Node) error { return unmarshalYAMLInto(n, s) }

// SwImageRef is swImage: the v3 schema types it as an object while its
// description calls it "a reference to the actual software image", relative
// to the package root or a URL. A string and an object are both accepted and
// kept as sent (exactly one of Ref and Object is set).
type SwImageRef struct {
	Ref    string
	Object map[string]any
}

// refKeys are the object members that Reference takes, in order, as the
// reference an object form carries.
func refKeys() []string { return []string{"path", "file", "href", "uri", "url", "swImage"} }

// IsZero reports whether no swImage was given.
func (r SwImageRef) IsZero() bool { return r.Ref == "" && r.Object == nil }

// Reference is the image reference: the string form, or the first non-empty
// string among an object's path, file, href, uri, url and swImage members.
// It is "" for an object that carries none of them.
func (r SwImageRef) Reference() string {
	if r.Object == nil {
		return r.Ref
	}
	for _, k := range refKeys() {
		if s, ok := r.Object[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

func (r *SwImageRef) unmarshalTree(d *decoder, n *tnode, path string) {
	switch n.kind {
	case kindNull:
		*r = SwImageRef{}
	case kindMap:
		obj, _ := d.toAny(n, path).(map[string]any)
		*r = SwImageRef{Object: obj}
	case kindString:
		*r = SwImageRef{Ref: n.text}
	default:
		d.fail(path, "must be a string (a path in the package or a URL) or an object, not %s", n.kind)
	}
}

func (r SwImageRef) MarshalJSON() ([]byte, error) {
	if r.Object != nil {
		return json.Marshal(r.Object)
	}
	return json.Marshal(r.Ref)
}

func (r SwImageRef) MarshalYAML() (any, error) {
	if r.Object != nil {
		return r.Object, nil
	}
	return r.Ref, nil
}

func (r *SwImageRef) UnmarshalJSON(b []byte) error     { return unmarshalJSONInto(b, r) }
func (r *SwImageRef) UnmarshalYAML(n *yaml.Node) error { return unmarshalYAMLInto(n, r) }

// OneOrMany is an array that is also accepted as its single element, for
// attributes that are one object in one version of the spec and an array in
// another (swImageDescriptor, transportsSupported). It encodes as an array.
type OneOrMany[T any] []T

func (o *OneOrMany[T]) unmarshalTree(d *decoder, n *tnode, path string) {
	switch n.kind {
	case kindNull:
		*o = nil
	case kindList:
		var s []T
		d.decode(n, reflect.ValueOf(&s).Elem(), path)
		*o = s
	default:
		var one T
		d.decode(n, reflect.ValueOf(&one).Elem(), path)
		*o = OneOrMany[T]{one}
	}
}

func (o *OneOrMany[T]) UnmarshalJSON(b []byte) error     { return unmarshalJSONInto(b, o) }
func (o *OneOrMany[T]) UnmarshalYAML(n *yaml.Node) error { return unmarshalYAMLInto(n, o) }

// InterfaceList is dstInterface: one object in v3, an array of up to two in
// v2 (and the v3 description asks for two values for the duplicate
// actions). Both forms are accepted; one interface encodes as an object,
// the v3 form, and two as an array, the only way to write them.
type InterfaceList []InterfaceDescriptor

func (l *InterfaceList) unmarshalTree(d *decoder, n *tnode, path string) {
	var o OneOrMany[InterfaceDescriptor]
	o.unmarshalTree(d, n, path)
	*l = InterfaceList(o)
}

func (l InterfaceList) MarshalJSON() ([]byte, error) {
	if len(l) == 1 {
		return json.Marshal(l[0])
	}
	return json.Marshal([]InterfaceDescriptor(l))
}

func (l InterfaceList) MarshalYAML() (any, error) {
	if len(l) == 1 {
		return l[0], nil
	}
	return []InterfaceDescriptor(l), nil
}

func (l *InterfaceList) UnmarshalJSON(b []byte) error     { return unmarshalJSONInto(b, l) }
func (l *InterfaceList) UnmarshalYAML(n *yaml.Node) error { return unmarshalYAMLInto(n, l) }

// The v3 file lists the following enumerations as [SEE_DESCRIPTION] or with
// a single value; the values below come from the descriptions and from the
// v2.1.1 file.

// TrafficAction is what the data plane does with matching packets.
type TrafficAction string

const (
	ActionDrop                  TrafficAction = "DROP"
	ActionForwardDecapsulated   TrafficAction = "FORWARD_DECAPSULATED"
	ActionForwardEncapsulated   TrafficAction = "FORWARD_ENCAPSULATED"
	ActionPassthrough           TrafficAction = "PASSTHROUGH"
	ActionDuplicateDecapsulated TrafficAction = "DUPLICATE_DECAPSULATED"
	ActionDuplicateEncapsulated TrafficAction = "DUPLICATE_ENCAPSULATED"
)

// Canonical maps the v2.1.1 names (FORWARD_AS_IS, DUPLICATED_DECAPSULATED,
// DUPLICATE_AS_IS) to their v3 names; other values are returned unchanged.
func (a TrafficAction) Canonical() TrafficAction {
	switch a {
	case "FORWARD_AS_IS":
		return ActionForwardEncapsulated
	case "DUPLICATED_DECAPSULATED":
		return ActionDuplicateDecapsulated
	case "DUPLICATE_AS_IS":
		return ActionDuplicateEncapsulated
	}
	return a
}

// Valid reports whether a (or its v2 name) is a known action.
func (a TrafficAction) Valid() bool { return a.Canonical().maxInterfaces() >= 0 }

// maxInterfaces is how many dstInterface values the action takes, or -1
// for an unknown action.
func (a TrafficAction) maxInterfaces() int {
	switch a {
	case ActionDrop:
		return 0
	case ActionForwardDecapsulated, ActionForwardEncapsulated, ActionPassthrough:
		return 1
	case ActionDuplicateDecapsulated, ActionDuplicateEncapsulated:
		return 2
	}
	return -1
}

// FilterType says whether a traffic filter applies per FLOW or per PACKET.
type FilterType string

const (
	FilterFlow   FilterType = "FLOW"
	FilterPacket FilterType = "PACKET"
)

// InterfaceType is the kind of destination interface.
type InterfaceType string

const (
	InterfaceTunnel InterfaceType = "TUNNEL"
	InterfaceMAC    InterfaceType = "MAC"
	InterfaceIP     InterfaceType = "IP"
)

// TunnelType is the encapsulation of a tunnel interface.
type TunnelType string

const (
	TunnelGTPU TunnelType = "GTP_U"
	TunnelGRE  TunnelType = "GRE"
)

// Canonical maps the v2.1.1 spelling GTP-U to GTP_U.
func (t TunnelType) Canonical() TunnelType {
	if t == "GTP-U" {
		return TunnelGTPU
	}
	return t
}

// IPAddressType is the address family of a DNS rule's answer.
type IPAddressType string

const (
	IPv4 IPAddressType = "IP_V4"
	IPv6 IPAddressType = "IP_V6"
)
