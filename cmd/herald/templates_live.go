package main

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gymhq/herald/templates"
)

// loadTemplates loads HERALD_TEMPLATES_DIR, or the templates built into
// herald when it is empty. A tree with any problem stops the process at
// start, naming the variable.
func loadTemplates(dir string) (*templates.Live, error) {
	if dir == "" {
		s, err := templates.Embedded()
		if err != nil {
			return nil, err
		}
		return templates.NewLive(s), nil
	}
	s, err := templates.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("HERALD_TEMPLATES_DIR: %w", err)
	}
	return templates.NewLive(s), nil
}

// templateMetrics are the hot-reload series: how many changes were taken
// or refused, and which version is served (the content hash, equal in
// every pod serving the same files).
type templateMetrics struct {
	reloads *prometheus.CounterVec
	info    *prometheus.GaugeVec
}

func newTemplateMetrics(r prometheus.Registerer) *templateMetrics {
	m := &templateMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_templates_reloads_total",
			Help: "Changes of HERALD_TEMPLATES_DIR seen, by result: ok (now served) or refused (invalid; the previous set keeps serving).",
		}, []string{"result"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_templates_info",
			Help: "1 for the template set being served, labelled with its version (content hash) and source (embedded or dir).",
		}, []string{"version", "source"}),
	}
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("refused")
	r.MustRegister(m.reloads, m.info)
	return m
}

func (m *templateMetrics) serving(version, source string) {
	m.info.Reset()
	m.info.WithLabelValues(version, source).Set(1)
}

// watchTemplates exports the served template version and, when
// HERALD_TEMPLATES_DIR is set and HERALD_TEMPLATES_RELOAD_INTERVAL is not
// 0, reloads the directory whenever its content changes. The returned func
// stops watching.
func (f *fleet) watchTemplates() func() {
	m := newTemplateMetrics(f.metrics.Registry)
	dir := f.cfg.TemplatesDir
	cur := f.templates.Current()
	source := "dir"
	if dir == "" {
		source = "embedded"
	}
	m.serving(cur.Version(), source)
	log := f.log
	if log == nil {
		log = zap.NewNop() // tests build fleets without a logger
	}
	log.Info("serving templates", zap.String("source", source), zap.String("templates_dir", dir),
		zap.String("version", cur.Version()), zap.Strings("event_types", cur.EventTypes()),
		zap.Duration("reload_interval", f.cfg.TemplatesReloadInterval))
	if dir == "" || f.cfg.TemplatesReloadInterval <= 0 {
		return func() {}
	}
	log = log.With(zap.String("templates_dir", dir))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.templates.Watch(ctx, dir, f.cfg.TemplatesReloadInterval, func(r templates.Reload) {
			if r.Err == nil {
				m.reloads.WithLabelValues("ok").Inc()
				m.serving(r.Version, "dir")
				log.Info("templates reloaded", zap.String("version", r.Version), zap.String("previous", r.Previous),
					zap.Strings("event_types", f.templates.Current().EventTypes()))
				return
			}
			m.reloads.WithLabelValues("refused").Inc()
			// One line: the first problem in the message, every problem
			// in a field.
			first := r.Err.Error()
			lines := make([]string, len(r.Problems))
			for i, p := range r.Problems {
				lines[i] = p.String()
			}
			if len(lines) > 0 {
				first = lines[0]
			}
			log.Error("template change refused; the previous set keeps serving: "+first,
				zap.String("version", r.Version), zap.String("serving", r.Previous), zap.Strings("problems", lines))
		})
	}()
	return func() {
		cancel()
		<-done
	}
}
