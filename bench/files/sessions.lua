-- wrk with one logged-in browser per connection: run with -tN -cN (one connection per thread).
-- WRK_SESSIONS names a file of sessions.py's lines (cookie header, CSRF token, path; tab-separated):
-- thread n sends the n-th line's cookie (the lines are used in turn when there are fewer), and its
-- path when one is given. With WRK_UPLOAD (a file) every request is a multipart POST of that file
-- to the URL's path (the lines' paths are not used), as the form field "file" (named bench.pdf),
-- with the session's CSRF token: an upload.
-- The summary comes from report.lua's done().
dofile("/bench/report.lua")

local sessions, next_session = {}, 0

local function lines(path)
  local result = {}
  for line in io.lines(path) do
    if line ~= "" then table.insert(result, line) end
  end
  return result
end

function setup(thread)
  if #sessions == 0 then sessions = lines(os.getenv("WRK_SESSIONS")) end
  thread:set("session", sessions[next_session % #sessions + 1])
  next_session = next_session + 1
end

local function multipart(token, payload)
  local boundary = "----benchboundary7e3f"
  local body = "--" .. boundary .. "\r\n" ..
    'Content-Disposition: form-data; name="csrf_token"\r\n\r\n' .. token .. "\r\n" ..
    "--" .. boundary .. "\r\n" ..
    'Content-Disposition: form-data; name="beschreibung"\r\n\r\nbench upload\r\n' ..
    "--" .. boundary .. "\r\n" ..
    'Content-Disposition: form-data; name="file"; filename="bench.pdf"\r\n' ..
    "Content-Type: application/pdf\r\n\r\n" .. payload .. "\r\n" ..
    "--" .. boundary .. "--\r\n"
  return "multipart/form-data; boundary=" .. boundary, body
end

function init(args)
  local cookie, token, path = session:match("^([^\t]*)\t([^\t]*)\t?([^\t]*)$")
  wrk.headers["Cookie"] = cookie
  local upload = os.getenv("WRK_UPLOAD")
  if path and path ~= "" and not (upload and upload ~= "") then wrk.path = path end
  if upload and upload ~= "" then
    local handle = assert(io.open(upload, "rb"))
    local payload = handle:read("*a")
    handle:close()
    wrk.method = "POST"
    wrk.headers["Content-Type"], wrk.body = multipart(token, payload)
  end
end
