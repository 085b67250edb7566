package steerpath

import "github.com/mecorch/mecorch/traffic/netns"

// setEthtool sets one of the legacy ethtool on/off features (ETHTOOL_SGRO,
// ETHTOOL_STSO...) of ifname in the namespace on nsPath.
func setEthtool(nsPath, ifname string, cmd uint32, on bool) error {
	return netns.Do(nsPath, func() error { return netns.SetFeature(ifname, cmd, on) })
}
