package agentlab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// Instance is the part of an app instance the lab looks at.
type Instance struct {
	ID                   string `json:"id"`
	InstantiationState   string `json:"instantiationState"`
	InstantiatedAppState struct {
		OperationalState string `json:"operationalState"`
	} `json:"instantiatedAppState"`
	Mecorch struct {
		HostID        string `json:"hostId"`
		ObservedState string `json:"observedState"`
	} `json:"x-mecorch"`
}

// Host is the part of a host the lab looks at.
type Host struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

// Onboard uploads the lab's package and returns its appDId.
func (l *Lab) Onboard(ctx context.Context) (string, error) {
	data, err := os.ReadFile(l.opts.Bins.Package)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	var pkg struct {
		ID     string `json:"id"`
		AppDID string `json:"appDId"`
	}
	if err := l.Client.Do(ctx, "POST", "/app_pkgm/v1/onboarded_app_packages", map[string]any{
		"appPkgName": "edge-echo", "appPkgVersion": "1.0.0", "appPkgPath": "file:///edge-echo.zip",
		"checksum": map[string]string{"algorithm": "SHA-256", "hash": hex.EncodeToString(sum[:])},
	}, &pkg, 201); err != nil {
		return "", err
	}
	if _, err := l.Client.Raw(ctx, "PUT", "/app_pkgm/v1/onboarded_app_packages/"+pkg.ID+"/package_content", "application/zip", data, nil, 202); err != nil {
		return "", err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := l.Client.Do(ctx, "GET", "/app_pkgm/v1/onboarded_app_packages/"+pkg.ID, nil, &pkg, 200); err != nil {
			return "", err
		}
		if pkg.AppDID != "" {
			return pkg.AppDID, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("package %s not onboarded", pkg.ID)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Instantiate creates and instantiates an instance of appDID; the
// x-mecorch-placement extension (may be nil) steers it.
func (l *Lab) Instantiate(ctx context.Context, appDID, name string, placement map[string]any) (inst, op string, err error) {
	var in Instance
	if err := l.Client.Do(ctx, "POST", "/app_lcm/v1/app_instances", map[string]string{"appDId": appDID, "appInstanceName": name}, &in, 201); err != nil {
		return "", "", err
	}
	body := map[string]any{}
	if placement != nil {
		body["x-mecorch-placement"] = placement
	}
	hdr, err := l.Client.Raw(ctx, "POST", "/app_lcm/v1/app_instances/"+in.ID+"/instantiate", "application/json", body, nil, 202)
	if err != nil {
		return in.ID, "", err
	}
	loc := hdr.Get("Location")
	return in.ID, loc[strings.LastIndex(loc, "/")+1:], nil
}

// Op returns an op occurrence's operationState.
func (l *Lab) Op(ctx context.Context, id string) (string, error) {
	var op struct {
		OperationState string `json:"operationState"`
	}
	err := l.Client.Do(ctx, "GET", "/app_lcm/v1/app_lcm_op_occs/"+id, nil, &op, 200)
	return op.OperationState, err
}

// Instance reads an app instance.
func (l *Lab) Instance(ctx context.Context, id string) (Instance, error) {
	var in Instance
	err := l.Client.Do(ctx, "GET", "/app_lcm/v1/app_instances/"+id, nil, &in, 200)
	return in, err
}

// Host reads a host.
func (l *Lab) Host(ctx context.Context, id string) (Host, error) {
	var h Host
	err := l.Client.Do(ctx, "GET", "/api/v1/hosts/"+id, nil, &h, 200)
	return h, err
}

// InstanceAddr returns the address an instance reports on its host's app
// bridge (from its agent's last report, GET /api/v1/agents/{hostId}).
func (l *Lab) InstanceAddr(ctx context.Context, hostID, instID string) (string, error) {
	a := l.Agent(hostID)
	if a == nil {
		return "", fmt.Errorf("no host %s", hostID)
	}
	var ag struct {
		Report struct {
			Instances []struct {
				ID      string `json:"id"`
				Address string `json:"address"`
			} `json:"instances"`
		} `json:"lastReport"`
	}
	if err := l.Client.Do(ctx, "GET", "/api/v1/agents/"+hostID, nil, &ag, 200); err != nil {
		return "", err
	}
	for _, s := range ag.Report.Instances {
		if s.ID == instID && s.Address != "" {
			return s.Address, nil
		}
	}
	return "", fmt.Errorf("host %s reports no address for %s", hostID, instID)
}

// Echo sends a line to addr's TCP port 7 from inside host's namespace and
// checks it comes back.
func (l *Lab) Echo(ctx context.Context, hostID, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := l.DialFrom(ctx, hostID, "tcp", net.JoinHostPort(addr, "7"))
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	msg := "hello from agentlab\n"
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo answered %q", buf)
	}
	return nil
}

// Eventually polls f every 100 ms until it returns nil or limit passes.
func Eventually(limit time.Duration, f func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
