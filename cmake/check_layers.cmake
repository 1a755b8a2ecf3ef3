# Fails the build when a core layer includes what it must not see.
#
# The layers, lowest first: base, domain, codec, io. A layer may include
# project headers ("patron/x.h") of its own layer and of the layers below,
# and the generated contracts ("patron/v1/..."). base, domain and codec are
# pure: no event loop, no sockets, no Kafka, Redis or HTTP library, no
# files. Run by the build before the core libraries compile:
#   cmake -DCORE=services/core -P cmake/check_layers.cmake
cmake_policy(SET CMP0054 NEW)
set(LAYERS base domain codec io)
# System headers that mean I/O: any of these in a pure layer is an error.
set(IO_HEADERS uv.h hiredis/ librdkafka/ http_parser.h sys/socket.h netinet/ netdb.h
               sys/epoll.h poll.h fcntl.h unistd.h dirent.h sys/stat.h)

set(errors "")
foreach(layer ${LAYERS})
  file(GLOB headers RELATIVE ${CORE}/${layer}/patron ${CORE}/${layer}/patron/*.h)
  set(own_${layer} ${headers})
endforeach()

set(allowed "")
foreach(layer ${LAYERS})
  list(APPEND allowed ${own_${layer}})
  file(GLOB files ${CORE}/${layer}/*.c ${CORE}/${layer}/*.h ${CORE}/${layer}/patron/*.h)
  foreach(f ${files})
    file(STRINGS ${f} includes REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
    foreach(line ${includes})
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*[<\"]([^>\"]+)[>\"].*" "\\1" inc "${line}")
      if(inc MATCHES "^patron/v1/")
        continue()
      elseif(inc MATCHES "^patron/(.+)$")
        set(name ${CMAKE_MATCH_1})
        list(FIND allowed ${name} at)
        if(at EQUAL -1)
          list(APPEND errors "${f}: includes ${inc}, which is not in ${layer} or a layer below it")
        endif()
      elseif(NOT layer STREQUAL "io")
        foreach(bad ${IO_HEADERS})
          string(FIND "${inc}" "${bad}" pos)
          if(pos EQUAL 0)
            list(APPEND errors "${f}: includes <${inc}>: I/O in the pure layer '${layer}'")
          endif()
        endforeach()
      endif()
    endforeach()
  endforeach()
endforeach()

if(errors)
  list(JOIN errors "\n  " text)
  message(FATAL_ERROR "layering violated:\n  ${text}")
endif()
