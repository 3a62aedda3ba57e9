--[[
JSON for the secretary script where FusionPBX's `resources.functions.lunajson` is not installed.

Same calling convention as lunajson, so the script can use either: `encode(value)` returns a string and
`decode(text)` returns a value; both raise an error on bad input (callers use pcall). JSON null decodes to
nil, as lunajson does by default.

Written for Lua 5.1 to 5.4 (FreeSWITCH builds mod_lua against whichever the system has): no integer
division, no bit operators, no utf8 library, no goto.
]]

local json = {}

local MAX_DEPTH = 64 -- nesting deeper than any reply of ours: refuse it instead of exhausting the C stack

local byte, char, concat, find, format, sub = string.byte, string.char, table.concat, string.find,
	string.format, string.sub
local floor = math.floor

-- Encoding ----------------------------------------------------------------------------------------------

local ESCAPES = {
	['"'] = '\\"',
	["\\"] = "\\\\",
	["\b"] = "\\b",
	["\f"] = "\\f",
	["\n"] = "\\n",
	["\r"] = "\\r",
	["\t"] = "\\t",
}

-- Length of the well-formed UTF-8 sequence starting at i (overlong forms and surrogates are not
-- well-formed), or nil.
local function utf8_length(s, i)
	local c = byte(s, i)
	local n, low, high
	if c >= 0xC2 and c <= 0xDF then
		n, low, high = 2, 0x80, 0xBF
	elseif c == 0xE0 then
		n, low, high = 3, 0xA0, 0xBF
	elseif c == 0xED then
		n, low, high = 3, 0x80, 0x9F
	elseif c >= 0xE1 and c <= 0xEF then
		n, low, high = 3, 0x80, 0xBF
	elseif c == 0xF0 then
		n, low, high = 4, 0x90, 0xBF
	elseif c == 0xF4 then
		n, low, high = 4, 0x80, 0x8F
	elseif c >= 0xF1 and c <= 0xF3 then
		n, low, high = 4, 0x80, 0xBF
	else
		return nil
	end
	local second = byte(s, i + 1)
	if not second or second < low or second > high then
		return nil
	end
	for k = i + 2, i + n - 1 do
		local b = byte(s, k)
		if not b or b < 0x80 or b > 0xBF then
			return nil
		end
	end
	return n
end

-- Caller names arrive from SIP headers in any encoding: a byte that is not valid UTF-8 becomes U+FFFD,
-- so the service (which requires UTF-8) never refuses the request over it.
function json.clean_utf8(s)
	if not find(s, "[\128-\255]") then
		return s
	end
	local out, i, n = {}, 1, #s
	while i <= n do
		local c = byte(s, i)
		local len = c < 0x80 and 1 or utf8_length(s, i)
		if len then
			out[#out + 1] = sub(s, i, i + len - 1)
			i = i + len
		else
			out[#out + 1] = "\239\191\189" -- U+FFFD
			i = i + 1
		end
	end
	return concat(out)
end

local function encode_string(s)
	if not find(s, '[%c"\\\128-\255]') then
		return '"' .. s .. '"'
	end
	local out, i, n = {}, 1, #s
	while i <= n do
		local c = byte(s, i)
		if c < 0x80 then
			local ch = char(c)
			out[#out + 1] = ESCAPES[ch] or ((c < 0x20 or c == 0x7F) and format("\\u%04x", c)) or ch
			i = i + 1
		else
			local len = utf8_length(s, i)
			if len then
				out[#out + 1] = sub(s, i, i + len - 1)
				i = i + len
			else
				out[#out + 1] = "\\ufffd"
				i = i + 1
			end
		end
	end
	return '"' .. concat(out) .. '"'
end

local function encode_number(x)
	if x ~= x or x == math.huge or x == -math.huge then
		error("json: cannot encode " .. tostring(x), 0)
	end
	if x == floor(x) and x >= -2 ^ 53 and x <= 2 ^ 53 then
		return format("%d", x)
	end
	local text = format("%.14g", x)
	if tonumber(text) ~= x then
		text = format("%.17g", x)
	end
	return text
end

-- A table is an array when its keys are exactly 1..n; the empty table encodes as an object.
local function array_length(t)
	local n = 0
	for key in pairs(t) do
		if type(key) ~= "number" or key < 1 or key ~= floor(key) then
			return nil
		end
		if key > n then
			n = key
		end
	end
	for k = 1, n do
		if t[k] == nil then
			return nil
		end
	end
	if n == 0 then
		return nil
	end
	return n
end

local encode_value

local function encode_table(t, depth)
	if depth > MAX_DEPTH then
		error("json: nesting too deep (or a cycle)", 0)
	end
	local n = array_length(t)
	local out = {}
	if n then
		for k = 1, n do
			out[k] = encode_value(t[k], depth + 1)
		end
		return "[" .. concat(out, ",") .. "]"
	end
	local keys = {}
	for key in pairs(t) do
		if type(key) ~= "string" then
			error("json: object keys must be strings, got " .. type(key), 0)
		end
		keys[#keys + 1] = key
	end
	table.sort(keys) -- a stable order: the same value always encodes to the same text
	for k, key in ipairs(keys) do
		out[k] = encode_string(key) .. ":" .. encode_value(t[key], depth + 1)
	end
	return "{" .. concat(out, ",") .. "}"
end

encode_value = function(v, depth)
	local kind = type(v)
	if kind == "nil" then
		return "null"
	elseif kind == "boolean" then
		return v and "true" or "false"
	elseif kind == "number" then
		return encode_number(v)
	elseif kind == "string" then
		return encode_string(v)
	elseif kind == "table" then
		return encode_table(v, depth)
	end
	error("json: cannot encode a " .. kind, 0)
end

function json.encode(value)
	return encode_value(value, 0)
end

-- Decoding ----------------------------------------------------------------------------------------------

local function fail(s, i, what)
	error(format("json: %s at position %d", what, i), 0)
end

local function skip_space(s, i)
	return find(s, "[^ \t\r\n]", i) or #s + 1
end

local function utf8_char(cp)
	if cp < 0x80 then
		return char(cp)
	elseif cp < 0x800 then
		return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40)
	elseif cp < 0x10000 then
		return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
	end
	return char(
		0xF0 + floor(cp / 0x40000),
		0x80 + floor(cp / 0x1000) % 0x40,
		0x80 + floor(cp / 0x40) % 0x40,
		0x80 + cp % 0x40
	)
end

local SIMPLE_ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function read_hex4(s, i)
	local hex = sub(s, i, i + 3)
	if not find(hex, "^%x%x%x%x$") then
		fail(s, i, "bad \\u escape")
	end
	return tonumber(hex, 16)
end

-- i is just after the opening quote; returns the string and the index after the closing quote.
local function decode_string(s, i)
	local out = {}
	while true do
		local j = find(s, '["\\]', i)
		if not j then
			fail(s, i, "unterminated string")
		end
		local chunk = sub(s, i, j - 1)
		if find(chunk, "[\1-\31]") or find(chunk, "\0", 1, true) then
			fail(s, i, "control character in string")
		end
		out[#out + 1] = chunk
		if sub(s, j, j) == '"' then
			return concat(out), j + 1
		end
		local e = sub(s, j + 1, j + 1)
		if SIMPLE_ESCAPES[e] then
			out[#out + 1] = SIMPLE_ESCAPES[e]
			i = j + 2
		elseif e == "u" then
			local cp = read_hex4(s, j + 2)
			i = j + 6
			if cp >= 0xD800 and cp <= 0xDBFF and sub(s, i, i + 1) == "\\u" then
				local low = read_hex4(s, i + 2)
				if low >= 0xDC00 and low <= 0xDFFF then
					cp = 0x10000 + (cp - 0xD800) * 0x400 + (low - 0xDC00)
					i = i + 6
				end
			end
			if cp >= 0xD800 and cp <= 0xDFFF then
				cp = 0xFFFD -- a lone surrogate has no UTF-8 form
			end
			out[#out + 1] = utf8_char(cp)
		else
			fail(s, j, "bad escape")
		end
	end
end

local function decode_number(s, i)
	local j = i
	if sub(s, j, j) == "-" then
		j = j + 1
	end
	local digits = s:match("^%d+", j)
	if not digits or (#digits > 1 and sub(digits, 1, 1) == "0") then
		fail(s, i, "bad number")
	end
	j = j + #digits
	local fraction = s:match("^%.%d+", j)
	if fraction then
		j = j + #fraction
	elseif sub(s, j, j) == "." then
		fail(s, j, "bad number")
	end
	local exponent = s:match("^[eE][-+]?%d+", j)
	if exponent then
		j = j + #exponent
	elseif find(s, "^[eE]", j) then
		fail(s, j, "bad number")
	end
	return tonumber(sub(s, i, j - 1)), j
end

local decode_value

local function decode_array(s, i, depth)
	local out, n = {}, 0
	i = skip_space(s, i)
	if sub(s, i, i) == "]" then
		return out, i + 1
	end
	while true do
		local value
		value, i = decode_value(s, i, depth + 1)
		n = n + 1
		out[n] = value
		i = skip_space(s, i)
		local c = sub(s, i, i)
		if c == "]" then
			return out, i + 1
		elseif c ~= "," then
			fail(s, i, "expected ',' or ']'")
		end
		i = i + 1
	end
end

local function decode_object(s, i, depth)
	local out = {}
	i = skip_space(s, i)
	if sub(s, i, i) == "}" then
		return out, i + 1
	end
	while true do
		if sub(s, i, i) ~= '"' then
			fail(s, i, "expected a string key")
		end
		local key
		key, i = decode_string(s, i + 1)
		i = skip_space(s, i)
		if sub(s, i, i) ~= ":" then
			fail(s, i, "expected ':'")
		end
		out[key], i = decode_value(s, i + 1, depth + 1)
		i = skip_space(s, i)
		local c = sub(s, i, i)
		if c == "}" then
			return out, i + 1
		elseif c ~= "," then
			fail(s, i, "expected ',' or '}'")
		end
		i = skip_space(s, i + 1)
	end
end

local LITERALS = { t = { "true", true }, f = { "false", false }, n = { "null", nil } }

decode_value = function(s, i, depth)
	if depth > MAX_DEPTH then
		fail(s, i, "nesting too deep")
	end
	i = skip_space(s, i)
	local c = sub(s, i, i)
	if c == "{" then
		return decode_object(s, i + 1, depth)
	elseif c == "[" then
		return decode_array(s, i + 1, depth)
	elseif c == '"' then
		return decode_string(s, i + 1)
	elseif c == "-" or find(c, "^%d$") then
		return decode_number(s, i)
	end
	local literal = LITERALS[c]
	if literal and sub(s, i, i + #literal[1] - 1) == literal[1] then
		return literal[2], i + #literal[1]
	end
	fail(s, i, c == "" and "unexpected end of input" or "unexpected character")
end

function json.decode(text)
	if type(text) ~= "string" then
		error("json: can only decode a string, got " .. type(text), 0)
	end
	local value, i = decode_value(text, 1, 0)
	i = skip_space(text, i)
	if i <= #text then
		fail(text, i, "trailing characters")
	end
	return value
end

return json
