/* engines.c -- loads the scan engines file (JSON, described in macros.h) into scan_engine descriptions. */
#include "core/base/base.h"
#include "kernels/scanmacro/scanmacro_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int load_lines(const cJSON *spec, const char *key, int required, template_lines *out, const char *where,
                      char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(spec, key);
    if (!item) return required ? error_set(err, errlen, "%s: missing \"%s\"", where, key) : 0;
    if (cJSON_IsString(item)) {
        out->line = xcalloc(1, sizeof *out->line);
        out->line[0] = xstrdup(item->valuestring);
        out->count = 1;
        return 0;
    }
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) == 0)
        return error_set(err, errlen, "%s: \"%s\" must be a string or a list of strings", where, key);
    out->line = xcalloc((size_t)cJSON_GetArraySize(item), sizeof *out->line);
    const cJSON *line;
    cJSON_ArrayForEach(line, item) {
        if (!cJSON_IsString(line))
            return error_set(err, errlen, "%s: \"%s\" must be a string or a list of strings", where, key);
        out->line[out->count++] = xstrdup(line->valuestring);
    }
    return 0;
}

static int load_string(const cJSON *spec, const char *key, const char *fallback, char **out, const char *where,
                       char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(spec, key);
    if (!item && fallback) {
        *out = xstrdup(fallback);
        return 0;
    }
    if (!cJSON_IsString(item) || (!fallback && !item->valuestring[0]))
        return error_set(err, errlen, "%s: \"%s\" must be a %sstring", where, key, fallback ? "" : "non-empty ");
    *out = xstrdup(item->valuestring);
    return 0;
}

static int load_engine(const cJSON *spec, scan_engine *e, const char *path, char *err, size_t errlen)
{
    char where[256];
    snprintf(where, sizeof where, "%s: engine \"%s\"", path, e->name);
    if (!cJSON_IsObject(spec)) return error_set(err, errlen, "%s: must be an object", where);
    if (load_string(spec, "motor_x", "", &e->motor_x, where, err, errlen) ||   /* "": the record's name */
        load_string(spec, "motor_y", "", &e->motor_y, where, err, errlen) ||
        load_string(spec, "detectors", "", &e->detectors, where, err, errlen))
        return -1;
    const cJSON *unit = cJSON_GetObjectItemCaseSensitive(spec, "um_per_unit");
    const cJSON *precision = cJSON_GetObjectItemCaseSensitive(spec, "precision");
    e->um_per_unit = unit ? (cJSON_IsNumber(unit) ? unit->valuedouble : -1) : 1;
    e->precision = precision ? (cJSON_IsNumber(precision) ? precision->valueint : -1) : 4;
    if (!(e->um_per_unit > 0)) return error_set(err, errlen, "%s: \"um_per_unit\" must be a positive number", where);
    if (e->precision < 0 || e->precision > 9) return error_set(err, errlen, "%s: \"precision\" must be 0..9", where);
    return load_lines(spec, "absolute", 1, &e->absolute, where, err, errlen) ||
           load_lines(spec, "relative", 1, &e->relative, where, err, errlen) ||
           load_lines(spec, "polygon_row", 1, &e->polygon_row, where, err, errlen) ||
           load_lines(spec, "pre", 0, &e->pre, where, err, errlen) ||
           load_lines(spec, "post", 0, &e->post, where, err, errlen);
}

scan_engines *scan_engines_load(const char *path, char *err, size_t errlen)
{
    char why[512];
    char *text = file_read_all(path, 0, NULL, why, sizeof why);
    if (!text) {
        error_set(err, errlen, "scan engines file: %s", why);
        return NULL;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "engines");
    if (!cJSON_IsObject(list) || cJSON_GetArraySize(list) == 0) {
        error_set(err, errlen, "%s: expected a JSON object with a non-empty \"engines\" object", path);
        cJSON_Delete(root);
        return NULL;
    }
    scan_engines *engines = xcalloc(1, sizeof *engines);
    engines->engine = xcalloc((size_t)cJSON_GetArraySize(list), sizeof *engines->engine);
    const cJSON *spec;
    cJSON_ArrayForEach(spec, list) {
        scan_engine *e = &engines->engine[engines->count++];
        e->name = xstrdup(spec->string);
        if (load_engine(spec, e, path, err, errlen)) {
            cJSON_Delete(root);
            scan_engines_free(engines);
            return NULL;
        }
    }
    cJSON_Delete(root);
    return engines;
}

static void free_lines(template_lines *t)
{
    for (int i = 0; i < t->count; i++) free(t->line[i]);
    free(t->line);
}

void scan_engines_free(scan_engines *engines)
{
    if (!engines) return;
    for (int i = 0; i < engines->count; i++) {
        scan_engine *e = &engines->engine[i];
        free(e->name);
        free(e->motor_x);
        free(e->motor_y);
        free(e->detectors);
        free_lines(&e->absolute);
        free_lines(&e->relative);
        free_lines(&e->polygon_row);
        free_lines(&e->pre);
        free_lines(&e->post);
    }
    free(engines->engine);
    free(engines);
}

int scan_engines_count(const scan_engines *engines)
{
    return engines->count;
}

const char *scan_engine_name(const scan_engines *engines, int index)
{
    return index >= 0 && index < engines->count ? engines->engine[index].name : NULL;
}

int scan_engine_find(const scan_engines *engines, const char *name)
{
    for (int i = 0; i < engines->count; i++)
        if (!strcmp(engines->engine[i].name, name)) return i;
    return -1;
}
