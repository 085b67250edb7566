package apppkgm

import (
	"encoding/json"
	"net/http"

	"github.com/mecorch/mecorch/mec"
)

// The wire types of MEC 010-2 v3.1.1 clause 6.2, sent bare (without the
// {"TypeName": …} wrapper of the generated OpenAPI file).

// AppPkgInfo is an app package resource (6.2.3.3).
//
// appDId, appName, appSoftwareVersion, appDVersion, softwareImages and
// mecInfo come from the AppD and so exist only once the package is
// ONBOARDED. The schema marks them required in every state; they are left
// out before onboarding rather than invented, as ETSI NFV-SOL 005 does for
// the same attributes of VnfPkgInfo ("shall be present after the package
// content has been on-boarded and absent otherwise").
type AppPkgInfo struct {
	ID                       string          `json:"id"`
	AppDID                   string          `json:"appDId,omitempty"`
	AppProvider              string          `json:"appProvider,omitempty"`
	AppName                  string          `json:"appName,omitempty"`
	AppSoftwareVersion       string          `json:"appSoftwareVersion,omitempty"`
	AppDVersion              string          `json:"appDVersion,omitempty"`
	Checksum                 Checksum        `json:"checksum"`
	SoftwareImages           []SWImageInfo   `json:"softwareImages,omitempty"`
	AdditionalArtifacts      []ArtifactInfo  `json:"additionalArtifacts,omitempty"`
	OnboardingState          string          `json:"onboardingState"`
	OperationalState         string          `json:"operationalState"`
	UsageState               string          `json:"usageState"`
	MecInfo                  []string        `json:"mecInfo,omitempty"`
	UserDefinedData          json.RawMessage `json:"userDefinedData,omitempty"`
	OnboardingFailureDetails *ProblemDetails `json:"onboardingFailureDetails,omitempty"`
	Links                    PkgLinks        `json:"_links"`
}

// Checksum is 6.2.5.6.
type Checksum struct {
	Algorithm string `json:"algorithm"`
	Hash      string `json:"hash"`
}

// SWImageInfo is one AppPkgSWImageInfo. MEC 010-2 leaves its type "for
// further study"; these are the attributes of NFV-SOL 005's
// VnfPackageSoftwareImageInfo that the package tells us.
type SWImageInfo struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	Checksum  Checksum `json:"checksum"`
	Size      int64    `json:"size,omitempty"`
	ImagePath string   `json:"imagePath,omitempty"`
}

// ArtifactInfo is one AppPkgArtifactInfo, after NFV-SOL 005's
// AdditionalArtifactInfo: the artifact's path inside the package.
type ArtifactInfo struct {
	ArtifactPath string `json:"artifactPath"`
}

// PkgLinks are AppPkgInfo's _links.
type PkgLinks struct {
	Self          Link `json:"self"`
	AppD          Link `json:"appD"`
	AppPkgContent Link `json:"appPkgContent"`
}

// Link is LinkType (6.2.5.2).
type Link struct {
	Href string `json:"href"`
}

// ProblemDetails is a stored onboarding failure as sent in AppPkgInfo.
type ProblemDetails struct {
	Type          string             `json:"type,omitempty"`
	Title         string             `json:"title,omitempty"`
	Status        int                `json:"status,omitempty"`
	Detail        string             `json:"detail,omitempty"`
	InvalidParams []mec.InvalidParam `json:"invalidParams,omitempty"`
}

// AppPkgInfoModifications is the PATCH body and answer (6.2.3.8).
type AppPkgInfoModifications struct {
	OperationalState string `json:"operationalState"`
}

// AppPkgSubscriptionInfo is a subscription resource (6.2.3.4).
type AppPkgSubscriptionInfo struct {
	ID               string      `json:"id"`
	SubscriptionType string      `json:"subscriptionType"`
	CallbackURI      string      `json:"callbackUri"`
	AppPkgFilter     []PkgFilter `json:"appPkgFilter,omitempty"`
	Links            SelfLinks   `json:"_links"`
}

// SelfLinks are _links with only self.
type SelfLinks struct {
	Self Link `json:"self"`
}

// AppPkgSubscriptionLinkList is the subscription collection (6.2.3.5).
type AppPkgSubscriptionLinkList struct {
	Links SubscriptionLinks `json:"_links"`
}

// SubscriptionLinks are AppPkgSubscriptionLinkList's _links.
type SubscriptionLinks struct {
	Self          Link               `json:"self"`
	Subscriptions []SubscriptionLink `json:"subscriptions"`
}

// SubscriptionLink is one entry of the subscription list.
type SubscriptionLink struct {
	Href             string `json:"href"`
	SubscriptionType string `json:"subscriptionType"`
}

// PkgFilter is AppPkgFilter (6.2.3.10): every attribute present must
// match.
type PkgFilter struct {
	AppPkgInfoID       string `json:"appPkgInfoId,omitempty"`
	AppDID             string `json:"appDId,omitempty"`
	AppProvider        string `json:"appProvider,omitempty"`
	AppName            string `json:"appName,omitempty"`
	AppSoftwareVersion string `json:"appSoftwareVersion,omitempty"`
	AppDVersion        string `json:"appDVersion,omitempty"`
	OperationalState   string `json:"operationalState,omitempty"`
	UsageState         string `json:"usageState,omitempty"`
}

// AppPkgNotification is the notification body (6.2.3.6).
type AppPkgNotification struct {
	ID               string     `json:"id"`
	NotificationType string     `json:"notificationType"`
	SubscriptionID   string     `json:"subscriptionId"`
	TimeStamp        TimeStamp  `json:"timeStamp"`
	AppPkgID         string     `json:"appPkgId"`
	AppDID           string     `json:"appDId"`
	OperationalState string     `json:"operationalState"`
	Links            NotifLinks `json:"_links"`
}

// NotifLinks are AppPkgNotification's _links.
type NotifLinks struct {
	Subscription Link `json:"subscription"`
}

// TimeStamp is 6.2.5.4.
type TimeStamp struct {
	Seconds     int64 `json:"seconds"`
	NanoSeconds int   `json:"nanoSeconds"`
}

// Subscription types (AppPkgSubscriptionType).
const (
	SubOnboarding = "AppPackageOnBoardingSubscription"
	SubChange     = "AppPackageChangeSubscription"
	SubDeletion   = "AppPackageDeletionSubscription"
)

// pkgInfo maps a package and its usage state to AppPkgInfo.
func (h *Handler) pkgInfo(p mec.AppPackage, usage string) AppPkgInfo {
	self := h.pkgURL(p.ID)
	info := AppPkgInfo{
		ID:               p.ID,
		AppProvider:      p.AppProvider,
		Checksum:         Checksum{Algorithm: p.Checksum.Algorithm, Hash: p.Checksum.Hash},
		OnboardingState:  p.OnboardingState,
		OperationalState: p.OperationalState,
		UsageState:       usage,
		UserDefinedData:  p.UserDefinedData,
		Links: PkgLinks{
			Self:          Link{self},
			AppD:          Link{self + "/appd"},
			AppPkgContent: Link{self + "/package_content"},
		},
	}
	if p.OnboardingState == mec.PkgOnboarded {
		info.AppDID = p.AppDID
		info.AppName = p.AppName
		info.AppSoftwareVersion = p.AppSoftwareVersion
		info.AppDVersion = p.AppDVersion
		info.MecInfo = p.MecInfo
		info.SoftwareImages = make([]SWImageInfo, 0, len(p.SoftwareImages))
		for _, im := range p.SoftwareImages {
			info.SoftwareImages = append(info.SoftwareImages, SWImageInfo{
				ID: im.ID, Name: im.Name, Version: im.Version, Size: im.SizeBytes, ImagePath: im.Path,
				Checksum: Checksum{Algorithm: im.Checksum.Algorithm, Hash: im.Checksum.Hash},
			})
		}
		// Artifacts lists every file; the images are reported above and
		// the attribute is for "artifacts that are not software images".
		images := map[string]bool{}
		for _, im := range p.SoftwareImages {
			images[im.Path] = true
		}
		for _, a := range p.Artifacts {
			if !images[a] {
				info.AdditionalArtifacts = append(info.AdditionalArtifacts, ArtifactInfo{ArtifactPath: a})
			}
		}
	}
	if f := p.OnboardingFailure; f != nil {
		title := f.Title
		if title == "" {
			title = http.StatusText(f.Status)
		}
		info.OnboardingFailureDetails = &ProblemDetails{Type: f.Type, Title: title, Status: f.Status,
			Detail: f.Detail, InvalidParams: f.InvalidParams}
	}
	return info
}
