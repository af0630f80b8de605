package wgsource

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/proxy"
	"github.com/tlsresume/tlsresume/proxy/wireguard"
)

// Flow is one UDP flow of a device that the source relays: the datagrams
// one device address and port sends to one destination, and the answers.
type Flow struct {
	// Device is the device's side: each Read returns the next datagram it
	// sent (ErrIdle once the flow was idle for Config.UDPIdleTimeout),
	// each Write sends one to it, from Device.Dst.
	Device *wireguard.UDPFlow
	// Origin is a UDP socket connected to Device.Dst, which the source's
	// rules allow the device to reach.
	Origin *net.UDPConn
	// DNSName is the name the device looked up whose answer held the
	// destination's address, if any.
	DNSName string
}

// FlowFunc handles one UDP flow until it ends. When it returns, both of
// the flow's sides are closed.
type FlowFunc func(ctx context.Context, f *Flow) error

// maxDatagram is the largest datagram relayed: the tunnel's MTU is 1420,
// and an answer from the origin cannot be larger than the socket buffer.
const maxDatagram = 65535

// RelayFlow relays a flow's datagrams untouched both ways until its
// device's side ends (idle, or the server closed) or ctx is done. It is
// what becomes of every UDP flow but DNS and QUIC.
func RelayFlow(ctx context.Context, f *Flow) error {
	stop := context.AfterFunc(ctx, func() { f.Device.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // origin → device, until Origin is closed
		defer wg.Done()
		buf := make([]byte, maxDatagram)
		for {
			n, err := f.Origin.Read(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					continue // an ICMP error reported on a connected socket; the device may send again
				}
				return
			}
			if _, err := f.Device.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, maxDatagram)
	var err error
	for {
		var n int
		if n, err = f.Device.Read(buf); err != nil {
			break
		}
		f.Origin.Write(buf[:n]) // a refused datagram is as lost as one dropped on the way
	}
	f.Origin.Close()
	wg.Wait()
	if errors.Is(err, wireguard.ErrIdle) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// proxyQUIC is Config.QUIC's default: the flow goes to the proxy, which
// relays or blocks it and records each QUIC connection on it, with the
// device and the name it looked up, as it records the device's TCP.
func (s *Source) proxyQUIC(ctx context.Context, f *Flow) error {
	return s.proxy.Load().HandleQUIC(ctx, proxy.QUICArrival{
		Client: f.Device, Origin: f.Origin, Dst: f.Device.Dst,
		Source: inspect.SourceWireGuard, Device: f.Device.Device, DNSName: f.DNSName,
	})
}

// handleUDP is the WireGuard server's HandleUDP: DNS is answered, a flow
// to a destination the device may reach is relayed (QUIC through
// Config.QUIC), any other is dropped. Each is counted for its device.
func (s *Source) handleUDP(fl *wireguard.UDPFlow) {
	d := s.device(fl.Device)
	log := s.cfg.Log.With().Str("device", fl.Device).Str("client_addr", fl.Src.String()).Str("dst", fl.Dst.String()).Logger()
	if isTunnelDNS(fl.Dst) {
		// Every query of the flow is answered, and the flow ends when no
		// other follows within ServeConn's wait (2s), not at the idle
		// timeout: glibc asks A and AAAA from one socket at once.
		for {
			err := s.resolver.ServeConn(fl, "udp")
			if err != nil {
				if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() { // the wait for another query ended
					log.Debug().Err(err).Msg("dns over udp through the tunnel")
				}
				return
			}
			d.dnsQueries.Add(1)
		}
	}
	if err := s.refusal(fl.Dst); err != nil {
		d.refusedUDP.Add(1)
		log.Debug().Err(err).Msg("drop udp flow")
		return
	}
	up, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(fl.Dst))
	if err != nil {
		d.failedUDP.Add(1)
		log.Debug().Err(err).Msg("udp flow: dialling the destination")
		return
	}
	defer up.Close()
	handle, kind := RelayFlow, &d.otherFlows
	if fl.Dst.Port() == 443 {
		handle, kind = s.cfg.QUIC, &d.quicFlows
	}
	kind.Add(1)
	if err := handle(s.ctx, &Flow{Device: fl, Origin: up, DNSName: s.nameOf(d, fl.Dst.Addr())}); err != nil {
		log.Debug().Err(err).Msg("udp flow")
	}
}
