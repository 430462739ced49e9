# xlstm-run build. `make` builds, `make publish` writes the native binary to build/xlstm-run,
# `make test` installs missing system packages and runs every test, `make run` generates text with the default model.
DOTNET    ?= dotnet
CONFIG    ?= Release
RID       ?= linux-x64
ISA       ?= x86-64-v3
BIN       := build/xlstm-run
PROMPT    ?= And God said
RESULTS   := build/test-results

.PHONY: all build publish test run deps clean

all: build

deps:
	@bash scripts/install-deps.sh

build:
	$(DOTNET) build XlstmRun.sln -c $(CONFIG) -nologo -v q

# NativeAOT single-file binary. ISA=x86-64-v4 opts into AVX-512 (the binary then needs an AVX-512 CPU).
publish:
	$(DOTNET) publish src/XlstmRun.Cli/XlstmRun.Cli.csproj -c $(CONFIG) -r $(RID) -p:IlcInstructionSet=$(ISA) -o build/publish -nologo -v q
	@mkdir -p build && cp build/publish/xlstm-run $(BIN)
	@echo "built $(BIN)"

test: deps publish
	@rm -rf $(RESULTS)
	XLSTM_RUN_BIN=$(CURDIR)/$(BIN) $(DOTNET) test tests/XlstmRun.Tests/XlstmRun.Tests.csproj -c $(CONFIG) -nologo \
		--logger "trx;LogFileName=results.trx" --logger "console;verbosity=normal" --results-directory $(RESULTS)

run: deps publish
	$(BIN) -n 60 -p "$(PROMPT)"

clean:
	rm -rf build src/*/bin src/*/obj tests/*/bin tests/*/obj
