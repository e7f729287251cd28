package main

import (
	"fmt"
	"image/color"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// pathColors are colour-blind friendly (Okabe-Ito) colours per path index.
var pathColors = []color.RGBA{
	{0x00, 0x72, 0xB2, 0xff}, // blue: raw veth
	{0xE6, 0x9F, 0x00, 0xff}, // orange: kernel VXLAN
	{0x00, 0x9E, 0x73, 0xff}, // green: weft
	{0xCC, 0x79, 0xA7, 0xff},
	{0x56, 0xB4, 0xE9, 0xff},
	{0xD5, 0x5E, 0x00, 0xff},
}

// medianMinMax is one bar: the median with its min-max spread as error bar.
type medianMinMax struct {
	x float64
	s summary
}

func (m medianMinMax) Len() int                  { return 1 }
func (m medianMinMax) XY(int) (float64, float64) { return m.x, m.s.Median }
func (m medianMinMax) YError(int) (float64, float64) {
	return m.s.Median - m.s.Min, m.s.Max - m.s.Median
}
func (m medianMinMax) Value(int) float64                       { return m.s.Median }
func (m medianMinMax) valuer() plotter.Values                  { return plotter.Values{m.s.Median} }
func (m medianMinMax) errorBars() (*plotter.YErrorBars, error) { return plotter.NewYErrorBars(m) }

// writeChart draws one panel per metric (3 columns), each with one bar per
// path (median over the repetitions, whiskers from min to max), and a
// figure title on top.
func writeChart(r *results, title, file string) error {
	const cols = 3
	rows := (len(allMetrics) + cols - 1) / cols
	panelW, panelH, titleH := 5*vg.Inch, 3.4*vg.Inch, 0.95*vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(panelW*cols, panelH*vg.Length(rows)+titleH), vgimg.UseDPI(96))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())

	titleStyle := text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, 18),
		Handler: plot.DefaultTextHandler, XAlign: draw.XCenter, YAlign: draw.YCenter}
	dc.FillText(titleStyle, vg.Point{X: dc.Center().X, Y: dc.Max.Y - 0.3*vg.Inch}, title)
	drawLegend(dc, r.Paths, dc.Max.Y-0.72*vg.Inch)

	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, m := range allMetrics {
		p, err := metricPanel(r, m)
		if err != nil {
			return err
		}
		grid[i/cols][i%cols] = p
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Inch / 4, PadY: vg.Inch / 5,
		PadTop: vg.Inch / 10, PadBottom: vg.Inch / 10, PadLeft: vg.Inch / 10, PadRight: vg.Inch / 5}
	canvases := plot.Align(grid, tiles, draw.Crop(dc, 0, 0, 0, -titleH))
	for i := range grid {
		for j, p := range grid[i] {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("chart: %w", err)
	}
	return f.Close()
}

func metricPanel(r *results, m metric) (*plot.Plot, error) {
	p := plot.New()
	better := "lower is better"
	if m.HigherBetter {
		better = "higher is better"
	}
	p.Title.Text = fmt.Sprintf("%s (%s)", m.Name, better)
	p.Y.Label.Text = m.Unit
	p.Y.Min = 0
	p.Y.Tick.Marker = compactTicks{}
	p.Add(plotter.NewGrid())
	var labels []string
	for i, name := range r.Paths {
		labels = append(labels, pathLabel(name))
		s := r.summary(name, m.Key)
		if s.N == 0 {
			continue
		}
		bar := medianMinMax{x: float64(i), s: s}
		bc, err := plotter.NewBarChart(bar.valuer(), vg.Inch*0.55)
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", m.Key, err)
		}
		bc.XMin = float64(i)
		bc.Color = pathColors[i%len(pathColors)]
		bc.LineStyle.Width = 0
		eb, err := bar.errorBars()
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", m.Key, err)
		}
		eb.LineStyle.Width = vg.Points(1.2)
		value, err := plotter.NewLabels(plotter.XYLabels{
			XYs:    plotter.XYs{{X: float64(i), Y: s.Max}},
			Labels: []string{formatValue(s.Median)},
		})
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", m.Key, err)
		}
		value.TextStyle[0].XAlign = draw.XCenter
		value.TextStyle[0].Font.Size = vg.Points(11)
		value.Offset = vg.Point{Y: vg.Points(4)}
		p.Add(bc, eb, value)
		if top := s.Max * 1.18; top > p.Y.Max {
			p.Y.Max = top
		}
	}
	p.NominalX(labels...)
	return p, nil
}

// drawLegend draws one row of colour swatches and path labels, centred at
// height y, shared by all panels.
func drawLegend(dc draw.Canvas, paths []string, y vg.Length) {
	style := text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, 14),
		Handler: plot.DefaultTextHandler, YAlign: draw.YCenter}
	swatch, gap := vg.Points(14), vg.Points(28)
	var total vg.Length
	for _, name := range paths {
		total += swatch + vg.Points(6) + style.Width(pathLabel(name)) + gap
	}
	x := dc.Center().X - (total-gap)/2
	for i, name := range paths {
		dc.SetColor(pathColors[i%len(pathColors)])
		dc.Fill(vg.Rectangle{Min: vg.Point{X: x, Y: y - swatch/2}, Max: vg.Point{X: x + swatch, Y: y + swatch/2}}.Path())
		x += swatch + vg.Points(6)
		dc.FillText(style, vg.Point{X: x, Y: y}, pathLabel(name))
		x += style.Width(pathLabel(name)) + gap
	}
}

// compactTicks are gonum's default ticks with the shortest labels
// ("250" and "2.5", not "250.00" and "2.50").
type compactTicks struct{}

func (compactTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}
