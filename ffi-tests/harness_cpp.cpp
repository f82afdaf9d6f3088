// The C++ translation unit of the harness: include/imstls.h must compile as C++ (strict
// warnings) and be pleasant there, e.g. with RAII owners.
#include <cstring>
#include <memory>

#include "imstls.h"

namespace {

struct Free {
    void operator()(imstls_config_builder *b) const { imstls_config_builder_free(b); }
    void operator()(imstls_config *c) const { imstls_config_free(c); }
    void operator()(imstls_ue *ue) const { imstls_ue_free(ue); }
    void operator()(imstls_output *o) const { imstls_output_free(o); }
    void operator()(imstls_error *e) const { imstls_error_free(e); }
};

template <typename T>
using owned = std::unique_ptr<T, Free>;

int failures = 0;

void expect(bool ok) {
    if (!ok) ++failures;
}

}  // namespace

extern "C" int cpp_checks(const char *pcscf) {
    failures = 0;
    imstls_config_builder *raw_builder = nullptr;
    expect(imstls_config_builder_new(&raw_builder) == IMSTLS_OK);
    owned<imstls_config_builder> builder(raw_builder);
    expect(imstls_config_builder_add_pcscf(builder.get(), pcscf) == IMSTLS_OK);

    imstls_config *raw_config = nullptr;
    expect(imstls_config_builder_build(builder.get(), &raw_config) == IMSTLS_OK);
    owned<imstls_config> config(raw_config);

    imstls_ue *raw_ue = nullptr;
    expect(imstls_ue_new(config.get(), 1000, &raw_ue) == IMSTLS_OK);
    owned<imstls_ue> ue(raw_ue);
    const char *impus[] = {"sip:alice@ims.test"};
    expect(imstls_ue_start_registration(ue.get(), 1000, "alice@ims.test", impus, 1) == IMSTLS_OK);

    imstls_output *raw_output = nullptr;
    expect(imstls_ue_poll_output(ue.get(), &raw_output) == IMSTLS_OK);
    owned<imstls_output> output(raw_output);
    switch (imstls_output_kind(output.get())) {
        case IMSTLS_OUTPUT_CONNECT:
            expect(imstls_output_port(output.get()) == 9);
            break;
        case IMSTLS_OUTPUT_NONE:
        case IMSTLS_OUTPUT_TRANSMIT:
        case IMSTLS_OUTPUT_CLOSE:
        case IMSTLS_OUTPUT_EVENT:
            expect(false);
            break;
    }

    imstls_result busy = IMSTLS_BUSY;
    expect(std::strcmp(imstls_result_str(busy), "another call on this handle is in progress") == 0);
    expect(imstls_ue_send_sip(ue.get(), 1000, nullptr, 5) == IMSTLS_NULL_ARGUMENT);
    imstls_error *raw_error = nullptr;
    expect(imstls_ue_last_error(ue.get(), &raw_error) == IMSTLS_OK);
    owned<imstls_error> error(raw_error);
    expect(imstls_error_result(error.get()) == IMSTLS_NULL_ARGUMENT);
    expect(std::strcmp(imstls_version(), IMSTLS_VERSION_STRING) == 0);
    return failures;
}
