package gtpu

import "fmt"

// PDUType tells a PDU Session Container's direction (TS 38.415 §5.5.3.1).
type PDUType uint8

// The two PDU types: DL PDU SESSION INFORMATION and UL PDU SESSION
// INFORMATION.
const (
	PDUTypeDL PDUType = 0
	PDUTypeUL PDUType = 1
)

func (t PDUType) String() string {
	switch t {
	case PDUTypeDL:
		return "DL"
	case PDUTypeUL:
		return "UL"
	}
	return fmt.Sprintf("PDUType(%d)", uint8(t))
}

// Bits of the container's first two octets.
const (
	// Octet 1, low nibble: the optional fields' presence flags. DL:
	// QMP, SNP, MSNP, spare; UL: QMP, DL Delay Ind., UL Delay Ind., SNP.
	dlOptionalFlags uint8 = 0x0e
	ulOptionalFlags uint8 = 0x0f
	// Octet 2, high bits. DL: PPP, RQI; UL: N3/N9 Delay Ind., New IE Flag.
	bitPPP    uint8 = 0x80
	bitRQI    uint8 = 0x40
	ulOctet2  uint8 = 0xc0
	qfiMask   uint8 = 0x3f
	ppiShift        = 5
	maxPPI    uint8 = 7
	pscMinLen       = 2
)

// PDUSessionContainer is the content of extension header 0x85 (TS 29.281
// §5.2.2.7), a PDU session user plane frame of TS 38.415 §5.5.2:
//
//	DL (type 0): octet 1  PDU type (4 bits) | QMP | SNP | MSNP | spare
//	             octet 2  PPP | RQI | QFI (6 bits)
//	             octet 3  PPI (3 bits) | spare (5), present when PPP is set
//	UL (type 1): octet 1  PDU type (4 bits) | QMP | DL Delay Ind. | UL Delay Ind. | SNP
//	             octet 2  N3/N9 Delay Ind. | New IE Flag | QFI (6 bits)
//
// then padding to 4n-2 octets. The QoS monitoring, sequence number and
// delay fields are not implemented: a container that announces them is
// refused by ParsePDUSessionContainer, never misread.
type PDUSessionContainer struct {
	Type PDUType
	QFI  uint8 // 0 to 63
	// DL only: RQI is the reflective QoS indication; PPP says that PPI,
	// the paging policy indicator (0 to 7), is present.
	RQI bool
	PPP bool
	PPI uint8
}

// ParsePDUSessionContainer interprets an extension header's content.
func ParsePDUSessionContainer(c []byte) (PDUSessionContainer, error) {
	if len(c) < pscMinLen {
		return PDUSessionContainer{}, fmt.Errorf("%w: PDU session container of %d octets, at least %d", ErrTruncated, len(c), pscMinLen)
	}
	p := PDUSessionContainer{Type: PDUType(c[0] >> 4), QFI: c[1] & qfiMask}
	switch p.Type {
	case PDUTypeDL:
		if f := c[0] & dlOptionalFlags; f != 0 {
			return PDUSessionContainer{}, fmt.Errorf("%w: DL PDU session container with QMP/SNP/MSNP flags %#x, not implemented", ErrMalformed, f)
		}
		p.RQI = c[1]&bitRQI != 0
		p.PPP = c[1]&bitPPP != 0
		if p.PPP {
			if len(c) < pscMinLen+1 {
				return PDUSessionContainer{}, fmt.Errorf("%w: DL PDU session container with PPP set has no PPI octet", ErrTruncated)
			}
			p.PPI = c[2] >> ppiShift
		}
	case PDUTypeUL:
		if f := c[0] & ulOptionalFlags; f != 0 {
			return PDUSessionContainer{}, fmt.Errorf("%w: UL PDU session container with QMP/delay/SNP flags %#x, not implemented", ErrMalformed, f)
		}
		if f := c[1] & ulOctet2; f != 0 {
			return PDUSessionContainer{}, fmt.Errorf("%w: UL PDU session container with N3/N9 delay or new IE flags %#x, not implemented", ErrMalformed, f)
		}
	default:
		return PDUSessionContainer{}, fmt.Errorf("%w: PDU session container of PDU type %d, want 0 (DL) or 1 (UL)", ErrMalformed, p.Type)
	}
	return p, nil
}

// Extension returns p as an extension header, padded to 4n-2 octets.
func (p PDUSessionContainer) Extension() (Extension, error) {
	if p.QFI > qfiMask {
		return Extension{}, fmt.Errorf("gtpu: QFI %d does not fit 6 bits", p.QFI)
	}
	c := []byte{uint8(p.Type) << 4, p.QFI}
	switch p.Type {
	case PDUTypeDL:
		if p.RQI {
			c[1] |= bitRQI
		}
		if p.PPP {
			if p.PPI > maxPPI {
				return Extension{}, fmt.Errorf("gtpu: PPI %d does not fit 3 bits", p.PPI)
			}
			c[1] |= bitPPP
			c = append(c, p.PPI<<ppiShift, 0, 0, 0) // PPI octet and padding to 6
		}
	case PDUTypeUL:
		if p.RQI || p.PPP || p.PPI != 0 {
			return Extension{}, fmt.Errorf("gtpu: RQI, PPP and PPI belong to DL PDU session containers")
		}
	default:
		return Extension{}, fmt.Errorf("gtpu: PDU type %d, want 0 (DL) or 1 (UL)", p.Type)
	}
	return Extension{Type: ExtPDUSessionContainer, Content: c}, nil
}

// PDUSession returns m's PDU Session Container; ok is false when it has
// none.
func (m *Message) PDUSession() (p PDUSessionContainer, ok bool, err error) {
	e, ok := m.Extension(ExtPDUSessionContainer)
	if !ok {
		return PDUSessionContainer{}, false, nil
	}
	p, err = ParsePDUSessionContainer(e.Content)
	return p, true, err
}

// NewGPDU returns a G-PDU carrying payload on tunnel teid, with p as its
// PDU Session Container, or with none when p is nil.
func NewGPDU(teid uint32, p *PDUSessionContainer, payload []byte) (*Message, error) {
	m := &Message{Type: GPDU, TEID: teid, Payload: payload}
	if p != nil {
		e, err := p.Extension()
		if err != nil {
			return nil, err
		}
		m.Extensions = []Extension{e}
	}
	return m, nil
}
