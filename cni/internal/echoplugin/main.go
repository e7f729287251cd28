// Command echoplugin is a trivial chained CNI plugin used by weft's tests:
// on ADD it records the prevResult it got into the file named by
// "recordFile" and prints that prevResult unchanged; CHECK and DEL record
// their verb and succeed.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

type conf struct {
	types.PluginConf
	RecordFile string `json:"recordFile"`
}

func parse(data []byte) (*conf, error) {
	var c conf
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	if c.RecordFile == "" {
		return nil, errors.New("recordFile missing")
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return nil, fmt.Errorf("parse prevResult: %w", err)
	}
	return &c, nil
}

func record(c *conf, verb string) error {
	f, err := os.OpenFile(c.RecordFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	line, err := json.Marshal(map[string]any{"verb": verb, "prevResult": c.PrevResult})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s\n", line)
	return err
}

func add(args *skel.CmdArgs) error {
	c, err := parse(args.StdinData)
	if err != nil {
		return err
	}
	if c.PrevResult == nil {
		return errors.New("echoplugin must be chained after a plugin that returns a result")
	}
	if err := record(c, "ADD"); err != nil {
		return err
	}
	return types.PrintResult(c.PrevResult, c.CNIVersion)
}

func verb(name string) func(*skel.CmdArgs) error {
	return func(args *skel.CmdArgs) error {
		c, err := parse(args.StdinData)
		if err != nil {
			return err
		}
		return record(c, name)
	}
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: add, Check: verb("CHECK"), Del: verb("DEL"), GC: verb("GC"), Status: verb("STATUS")},
		version.All, "echoplugin (weft tests)")
}
