package bench

import (
	"bytes"
	"fmt"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// chartSeries is one curve of a percentile chart.
type chartSeries struct {
	label  string
	color  int // index into plotutil's colours
	dashed bool
	dotted bool
	pts    []QuantilePoint
}

// percentileX maps a quantile to the chart's x: 1/(1-q), drawn on a log
// scale so that 50%, 90%, 99%, 99.9% … are evenly spaced.
func percentileX(q float64) float64 { return 1 / (1 - q) }

// percentileTicks label the x axis in percentiles.
func percentileTicks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	labels := []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"}
	for k, l := range labels {
		x := math.Pow(10, float64(k))
		if x >= min/1.0001 && x <= max*1.0001 {
			ts = append(ts, plot.Tick{Value: x, Label: l})
		}
	}
	if x := 2.0; x >= min && x <= max {
		ts = append(ts, plot.Tick{Value: x, Label: "50%"})
	}
	return ts
}

// writePercentileChart draws a percentile chart of series (x: percentile
// on a log scale of 1/(1-q); y: latency in ms, log scale) as an SVG file;
// it writes nothing when no series has points.
func writePercentileChart(path, title string, series []chartSeries) error {
	p, drawn, err := percentilePlot(title, series)
	if err != nil || drawn == 0 {
		return err
	}
	c := vgsvg.NewWith(vgsvg.UseWH(8*vg.Inch, 5*vg.Inch), vgsvg.EmbedFonts(false))
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return fmt.Errorf("chart %s: %w", title, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("chart %s: %w", title, err)
	}
	return nil
}

// percentilePlot builds the plot of writePercentileChart and tells how
// many series it drew.
func percentilePlot(title string, series []chartSeries) (*plot.Plot, int, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.TickerFunc(percentileTicks)
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	// Curves rise to the right: the bottom right stays clear.
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.YOffs = vg.Points(30)
	p.Add(plotter.NewGrid())
	drawn := 0
	for _, s := range series {
		var xys plotter.XYs
		for _, pt := range s.pts {
			if pt.Ms <= 0 || pt.Quantile >= 1 {
				continue
			}
			xys = append(xys, plotter.XY{X: percentileX(pt.Quantile), Y: pt.Ms})
		}
		if len(xys) < 2 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, 0, fmt.Errorf("chart %s: %w", title, err)
		}
		l.Color = plotutil.Color(s.color)
		l.Width = vg.Points(1.5)
		switch {
		case s.dashed:
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		case s.dotted:
			l.Dashes = []vg.Length{vg.Points(1), vg.Points(2)}
		}
		p.Add(l)
		p.Legend.Add(s.label, l)
		drawn++
	}
	return p, drawn, nil
}
