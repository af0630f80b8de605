package wgpeer

import (
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// TestTunReadBatches: Read returns every packet the netstack has queued,
// up to the buffers it is given, so that WireGuard encrypts and sends them
// as one batch; it blocks only for the first.
func TestTunReadBatches(t *testing.T) {
	ep := channel.New(16, mtu, "")
	tun := newTun(ep)
	defer tun.Close()
	var pkts stack.PacketBufferList
	for i := range 5 {
		pkts.PushBack(stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData([]byte{0x45, byte(i)})}))
	}
	if n, err := ep.WritePackets(pkts); err != nil || n != 5 {
		t.Fatalf("queued %d packets: %v", n, err)
	}
	pkts.DecRef()
	bufs := make([][]byte, 3)
	for i := range bufs {
		bufs[i] = make([]byte, 64)
	}
	sizes := make([]int, len(bufs))
	next := 0
	for _, want := range []int{3, 2} {
		n, err := tun.Read(bufs, sizes, 16)
		if err != nil || n != want {
			t.Fatalf("Read = %d, %v; want %d packets", n, err, want)
		}
		for i := range n {
			if sizes[i] != 2 || bufs[i][16] != 0x45 || int(bufs[i][17]) != next {
				t.Errorf("packet %d: size %d, % x", next, sizes[i], bufs[i][16:18])
			}
			next++
		}
	}
}
