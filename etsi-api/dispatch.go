package etsiapi

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/mecorch/mecorch/etsi-api/notify"
	"github.com/mecorch/mecorch/mec"
)

// notifier turns one committed event into notification deliveries; each
// ETSI API package has one for its own subscriptions.
type notifier func(ctx context.Context, ev mec.Event) ([]delivery, error)

type delivery struct {
	CallbackURI string
	Body        []byte
}

// notifierOf adapts an API package's Notifications, whose Outgoing has
// delivery's fields.
func notifierOf[O ~struct {
	CallbackURI string
	Body        []byte
}](f func(context.Context, mec.Event) ([]O, error)) notifier {
	return func(ctx context.Context, ev mec.Event) ([]delivery, error) {
		outs, err := f(ctx, ev)
		ds := make([]delivery, len(outs))
		for i, o := range outs {
			ds[i] = delivery(o)
		}
		return ds, err
	}
}

// enqueuer is the notification sender's one method the dispatcher uses.
type enqueuer interface {
	Enqueue(callbackURI string, body []byte) bool
}

// dispatcher is the mec.EventSink of the services. Publish only queues the
// event, so a request never waits for subscription matching or delivery;
// Run matches subscriptions and hands deliveries to the sender.
type dispatcher struct {
	events    chan mec.Event
	notifiers []notifier
	sender    enqueuer
	log       *slog.Logger
	dropped   atomic.Int64
}

func newDispatcher(queue int, sender enqueuer, log *slog.Logger, notifiers ...notifier) *dispatcher {
	return &dispatcher{events: make(chan mec.Event, queue), notifiers: notifiers, sender: sender, log: log}
}

// Publish queues ev, dropping it (and counting the drop) when the queue is
// full rather than blocking the request that caused it.
func (d *dispatcher) Publish(ev mec.Event) {
	select {
	case d.events <- ev:
	default:
		if d.dropped.Add(1)%100 == 1 {
			d.log.Warn("notification event queue full; events dropped", "dropped", d.dropped.Load())
		}
	}
}

// Run dispatches events until ctx ends.
func (d *dispatcher) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-d.events:
			d.dispatch(ctx, ev)
		}
	}
}

func (d *dispatcher) dispatch(ctx context.Context, ev mec.Event) {
	for _, n := range d.notifiers {
		outs, err := n(ctx, ev)
		if err != nil {
			d.log.Error("match subscriptions", "event", ev.Type, "err", err)
			continue
		}
		for _, o := range outs {
			if !d.sender.Enqueue(o.CallbackURI, o.Body) {
				d.log.Warn("notification queue full; notification dropped", "event", ev.Type, "callback", notify.SafeURI(o.CallbackURI))
			}
		}
	}
}
