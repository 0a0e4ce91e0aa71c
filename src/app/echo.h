// The echo endpoint: every message comes back unchanged, as one message.
#pragma once

#include "wsr/wsr.h"

extern const wsr_handlers echo_handlers;
