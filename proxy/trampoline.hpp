#pragma once
// C-callback adapters for libevent: an exception must never unwind through libevent's frames,
// so every callback enters the C++ object through one of these, which catch everything and
// hand the failure to the object's fail_internal(). Every libevent callback in proxy/ is one
// of these; a new callback shape gets its adapter here.

#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <exception>

struct evhttp_request;

namespace postern::proxy {

// Runs `call` on `object`; an exception becomes object->fail_internal(reason).
template <class T, class Call>
void guarded(T* object, Call&& call) noexcept {
    try {
        call();
    } catch (const std::exception& e) {
        object->fail_internal(e.what());
    } catch (...) {
        object->fail_internal("unknown exception");
    }
}

template <class T, void (T::*Method)()>
void bev_data_cb(bufferevent* /*bev*/, void* self) noexcept {
    auto* object = static_cast<T*>(self);
    guarded(object, [object] { (object->*Method)(); });
}

template <class T, void (T::*Method)(short)>
void bev_event_cb(bufferevent* /*bev*/, short what, void* self) noexcept {
    auto* object = static_cast<T*>(self);
    guarded(object, [object, what] { (object->*Method)(what); });
}

// For event_new(): a socket or timer event's callback, with the events that fired...
template <class T, void (T::*Method)(short)>
void event_cb(evutil_socket_t /*fd*/, short what, void* self) noexcept {
    auto* object = static_cast<T*>(self);
    guarded(object, [object, what] { (object->*Method)(what); });
}

// ... with nothing (a timer or a user-triggered event),
template <class T, void (T::*Method)()>
void event_cb(evutil_socket_t /*fd*/, short /*what*/, void* self) noexcept {
    auto* object = static_cast<T*>(self);
    guarded(object, [object] { (object->*Method)(); });
}

// ... or with the descriptor too (evsignal_new(): the signal number).
template <class T, void (T::*Method)(evutil_socket_t, short)>
void event_cb(evutil_socket_t fd, short what, void* self) noexcept {
    auto* object = static_cast<T*>(self);
    guarded(object, [object, fd, what] { (object->*Method)(fd, what); });
}

// For evconnlistener_new_bind(): a connection was accepted.
template <class T, void (T::*Method)(evutil_socket_t, const sockaddr*)>
void accept_cb(evconnlistener* /*l*/, evutil_socket_t fd, sockaddr* peer, int /*len*/,
               void* self) noexcept {
    auto* object = static_cast<T*>(self);
    guarded(object, [object, fd, peer] { (object->*Method)(fd, peer); });
}

// For evconnlistener_set_error_cb(): accept() failed.
template <class T, void (T::*Method)()>
void accept_error_cb(evconnlistener* /*l*/, void* self) noexcept {
    auto* object = static_cast<T*>(self);
    guarded(object, [object] { (object->*Method)(); });
}

// For evhttp_set_gencb(): a request arrived (proxy/metrics_endpoint.hpp).
template <class T, void (T::*Method)(evhttp_request*)>
void http_cb(evhttp_request* request, void* self) noexcept {
    auto* object = static_cast<T*>(self);
    guarded(object, [object, request] { (object->*Method)(request); });
}

}  // namespace postern::proxy
