# xlstm-run build. `make` builds, `make publish` writes the native binary to build/xlstm-run,
# `make test` installs missing system packages and runs every test (the full gate, as CI and the README use it),
# `make check` is the fast inner loop (build + unit tests: no apt, no NativeAOT publish), `make run` generates text.
# `make install PREFIX=/usr/local` installs the binary and the default model, `make uninstall` removes them,
# `make dist` writes a release tarball to build/dist/.
DOTNET    ?= dotnet
CONFIG    ?= Release
RID       ?= linux-x64
ISA       ?= x86-64-v3
BIN       := build/xlstm-run
PROMPT    ?= And God said
RESULTS   := build/test-results
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    := $(DESTDIR)$(PREFIX)/bin
SHAREDIR  := $(DESTDIR)$(PREFIX)/share/xlstm-run
VERSION   := $(shell sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' src/XlstmRun.Cli/XlstmRun.Cli.csproj)
DISTNAME  := xlstm-run-$(VERSION)-$(RID)
MODEL     := models/default/default.gguf
# what the binary is built from: install and dist rebuild it only when one of these is newer
SOURCES   := $(shell find src shaders -type f \( -name '*.cs' -o -name '*.csproj' -o -name '*.comp' -o -name '*.glsl' -o -name '*.cl' \) \
               -not -path '*/obj/*' -not -path '*/bin/*' 2>/dev/null) Directory.Build.props

# Tests that run the xlstm-run executable end to end (they need the published binary): left out of `make check`.
E2E_FILTER := FullyQualifiedName!~XlstmRun.Tests.Cli.&FullyQualifiedName!~CliTests.&FullyQualifiedName!~DefaultModelTests.F16Greedy&FullyQualifiedName!~DefaultModelTests.Q8Greedy&FullyQualifiedName!~DefaultModelTests.ExcerptPerplexity
# `make check FILTER=WeightType` narrows the unit tests further (a substring of the test names).
FILTER    ?=

.PHONY: all build publish test check run deps clean install uninstall dist

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

# Fast inner loop: build the solution and run the unit tests in process (no system packages installed, no publish).
check: build
	$(DOTNET) test tests/XlstmRun.Tests/XlstmRun.Tests.csproj -c $(CONFIG) -nologo --no-build \
		--filter "$(E2E_FILTER)$(if $(FILTER),&FullyQualifiedName~$(FILTER))"

run: deps publish
	$(BIN) -n 60 -p "$(PROMPT)"

$(BIN): $(SOURCES)
	$(MAKE) publish

# The binary looks for the default model in ../share/xlstm-run/ beside itself, so PREFIX/bin + PREFIX/share work together.
install: $(BIN)
	install -d "$(BINDIR)" "$(SHAREDIR)"
	install -m 755 $(BIN) "$(BINDIR)/xlstm-run"
	install -m 644 $(MODEL) "$(SHAREDIR)/default.gguf"
	install -m 644 models/default/README.md "$(SHAREDIR)/default-model-README.md"
	@echo "installed $(BINDIR)/xlstm-run and $(SHAREDIR)/default.gguf"

uninstall:
	rm -f "$(BINDIR)/xlstm-run" "$(SHAREDIR)/default.gguf" "$(SHAREDIR)/default-model-README.md"
	-rmdir "$(SHAREDIR)" 2>/dev/null || true
	@echo "removed $(BINDIR)/xlstm-run and $(SHAREDIR)"

# Release tarball: the install layout (bin/, share/xlstm-run/) plus the README and the licence files, so that
# bin/xlstm-run finds its default model wherever the tarball is unpacked.
dist: $(BIN)
	rm -rf build/dist/$(DISTNAME) && mkdir -p build/dist/$(DISTNAME)/bin build/dist/$(DISTNAME)/share/xlstm-run
	install -m 755 $(BIN) build/dist/$(DISTNAME)/bin/xlstm-run
	install -m 644 $(MODEL) build/dist/$(DISTNAME)/share/xlstm-run/default.gguf
	install -m 644 models/default/README.md build/dist/$(DISTNAME)/share/xlstm-run/default-model-README.md
	install -m 644 README.md $(wildcard LICENSE* LICENCE* COPYING* NOTICE*) build/dist/$(DISTNAME)/
	tar -C build/dist --owner=0 --group=0 -czf build/dist/$(DISTNAME).tar.gz $(DISTNAME)
	@cd build/dist && sha256sum $(DISTNAME).tar.gz > $(DISTNAME).tar.gz.sha256 && echo "wrote build/dist/$(DISTNAME).tar.gz" && cat $(DISTNAME).tar.gz.sha256

clean:
	rm -rf build src/*/bin src/*/obj tests/*/bin tests/*/obj
