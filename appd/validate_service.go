package appd

import (
	"net/url"
)

func (c *checker) extCpds(cpds []AppExternalCpd) {
	if len(cpds) == 0 {
		c.add("appExtCpd", "is required (at least one external connection point)")
		return
	}
	for i := range cpds {
		cpd := &cpds[i]
		p := indexPath("appExtCpd", i)
		if cpd.InheritedAttributes == nil {
			c.add(p+".inherited_attributes", "is required")
		}
		for j, r := range cpd.VirtualNetworkInterfaceRequirements {
			if r.StandardizedNetworkInterfaceRequirements == "" && r.NetworkInterfaceRequirements == "" && r.NicIoRequirements == nil {
				c.add(indexPath(p+".virtualNetworkInterfaceRequirements", j),
					"needs one of standardizedNetworkInterfaceRequirements, networkInterfaceRequirements, nicIoRequirements")
			}
		}
		for j, sd := range cpd.AdditionalServiceData {
			sp := indexPath(p+".additionalServiceData", j)
			if len(sd.PortData) == 0 {
				c.add(sp+".portData", "is required (at least one port)")
			}
			for k, pd := range sd.PortData {
				pp := indexPath(sp+".portData", k)
				c.required(pp+".name", pd.Name)
				c.oneOf(pp+".protocol", pd.Protocol, "TCP", "UDP", "SCTP")
				if pd.Port < 1 || pd.Port > 65535 {
					c.add(pp+".port", "%d is outside 1..65535", pd.Port)
				}
				if pd.PortConfigurable == nil {
					c.add(pp+".portConfigurable", "is required")
				}
			}
		}
	}
}

func (c *checker) services(a *AppD) {
	for i := range a.AppServiceRequired {
		c.serviceDependency(indexPath("appServiceRequired", i), &a.AppServiceRequired[i])
	}
	for i := range a.AppServiceOptional {
		c.serviceDependency(indexPath("appServiceOptional", i), &a.AppServiceOptional[i])
	}
	for i := range a.AppServiceProduced {
		s := &a.AppServiceProduced[i]
		p := indexPath("appServiceProduced", i)
		c.required(p+".serName", s.SerName)
		c.required(p+".version", s.Version)
		c.category(p+".serCategory", s.SerCategory)
		for j := range s.TransportsSupported {
			tp := indexPath(p+".transportsSupported", j)
			c.transport(tp+".transport", s.TransportsSupported[j].Transport)
			c.serializers(tp+".serializers", s.TransportsSupported[j].Serializers)
		}
	}
	for _, f := range []struct {
		name string
		deps []FeatureDependency
	}{{"appFeatureRequired", a.AppFeatureRequired}, {"appFeatureOptional", a.AppFeatureOptional}} {
		for i, d := range f.deps {
			p := indexPath(f.name, i)
			c.required(p+".featureName", d.FeatureName)
			c.required(p+".version", d.Version)
		}
	}
	for i := range a.TransportDependencies {
		c.transportDependency(indexPath("transportDependencies", i), &a.TransportDependencies[i])
	}
}

func (c *checker) serviceDependency(p string, s *ServiceDependency) {
	c.required(p+".serName", s.SerName)
	c.required(p+".version", s.Version)
	c.category(p+".serCategory", s.SerCategory)
	for i := range s.SerTransportDependencies {
		c.transportDependency(indexPath(p+".serTransportDependencies", i), &s.SerTransportDependencies[i])
	}
}

func (c *checker) category(p string, cat *CategoryRef) {
	if cat == nil {
		return
	}
	c.required(p+".href", cat.Href)
	c.required(p+".id", cat.ID)
	c.required(p+".name", cat.Name)
	c.required(p+".version", cat.Version)
}

func (c *checker) transportDependency(p string, t *TransportDependency) {
	c.transport(p+".transport", t.Transport)
	c.serializers(p+".serializers", t.Serializers)
	if len(t.Labels) == 0 {
		c.add(p+".labels", "is required (at least one label)")
	}
}

func (c *checker) transport(p string, t *TransportDescriptor) {
	if t == nil {
		c.add(p, "is required")
		return
	}
	c.required(p+".name", t.Name)
	if c.required(p+".type", t.Type) {
		c.extensible(p+".type", t.Type, "REST_HTTP", "MB_TOPIC_BASED", "MB_ROUTING", "MB_PUBSUB", "RPC", "RPC_STREAMING", "WEBSOCKET")
	}
	c.required(p+".protocol", t.Protocol)
	c.required(p+".version", t.Version)
	if t.Security == nil {
		c.add(p+".security", "is required")
	} else if o := t.Security.OAuth2Info; o != nil {
		c.oauth2(p+".security.oAuth2Info", o)
	}
}

func (c *checker) oauth2(p string, o *OAuth2Info) {
	if o.GrantTypes == nil {
		c.add(p+".grantTypes", "is required")
	}
	needsEndpoint := false
	for i, g := range o.GrantTypes {
		c.oneOf(indexPath(p+".grantTypes", i), g,
			"OAUTH2_AUTHORIZATION_CODE", "OAUTH2_IMPLICIT_GRANT", "OAUTH2_RESOURCE_OWNER", "OAUTH2_CLIENT_CREDENTIALS")
		if g != "OAUTH2_IMPLICIT_GRANT" {
			needsEndpoint = true
		}
	}
	if o.TokenEndpoint == "" {
		if needsEndpoint {
			c.add(p+".tokenEndpoint", "is required unless the only grant type is OAUTH2_IMPLICIT_GRANT")
		}
		return
	}
	if u, err := url.Parse(o.TokenEndpoint); err != nil || !u.IsAbs() || u.Host == "" {
		c.add(p+".tokenEndpoint", "%q is not an absolute URI", o.TokenEndpoint)
	}
}

func (c *checker) serializers(p string, s []string) {
	if len(s) == 0 {
		c.add(p, "is required (at least one serializer)")
	}
	for i, v := range s {
		c.extensible(indexPath(p, i), v, "JSON", "XML", "PROTOBUF3")
	}
}

// extensible checks a value of an enumeration that MEC 011 marks
// x-etsi-mec-extensible: the known values, or a new value written the same
// way (upper case letters, digits and underscores).
func (c *checker) extensible(p, v string, known ...string) {
	if !c.required(p, v) {
		return
	}
	for _, k := range known {
		if v == k {
			return
		}
	}
	for i, r := range v {
		if !(r >= 'A' && r <= 'Z' || i > 0 && (r >= '0' && r <= '9' || r == '_')) {
			c.add(p, "%q is not one of the known values (%v) nor an UPPER_CASE extension", v, known)
			return
		}
	}
}
